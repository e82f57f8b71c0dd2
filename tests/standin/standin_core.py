"""Behaviour of the DeepSpeech stand-in (see README.md). NOT DeepSpeech: it fakes training with sleeps.

Stdlib only; imported as a top-level module by DeepSpeech.py and deepspeech_training/train.py.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import math
import os
import re
import sys
import time
import traceback
from pathlib import Path

try:
    import standin_flags
except ImportError:  # imported as tests.standin.standin_core
    from . import standin_flags  # type: ignore[no-redef]

DASHES = "-" * 80


class Fatal(Exception):
    """Ends the stand-in with exit 1 after printing an `E` line (DeepSpeech's sys.exit(1) paths)."""


def log(line: str) -> None:
    print(line, flush=True)


def elapsed(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(seconds)))


# ------------------------------------------------------------------------------------------- checkpoints


def read_state(directory: Path, state_file: str) -> Path | None:
    state = directory / state_file
    if not state.is_file():
        return None
    match = re.search(r'^model_checkpoint_path: "(.*)"$', state.read_text(), re.M)
    if not match:
        return None
    path = Path(match[1])
    if not path.is_absolute():
        path = directory / path
    return path if Path(f"{path}.index").is_file() else None


def read_weights(prefix: Path) -> dict:
    return json.loads(Path(f"{prefix}.index").read_text())


class Saver:
    """Like tf.train.Saver: keeps only what *this process* saved in its keep-list."""

    def __init__(self, directory: Path, prefix: str, state_file: str, keep: int) -> None:
        self.directory, self.prefix, self.state_file, self.keep = directory, prefix, state_file, keep
        self.kept: list[Path] = []

    def save(self, step: int, weights: dict) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.prefix}-{step}"
        Path(f"{path}.index").write_text(json.dumps({**weights, "step": step}, indent=1))
        Path(f"{path}.data-00000-of-00001").write_bytes(b"DEEPSPEECH STAND-IN: fake weights\n")
        Path(f"{path}.meta").write_bytes(b"DEEPSPEECH STAND-IN: fake graph\n")
        self.kept = [p for p in self.kept if p != path] + [path]
        while len(self.kept) > self.keep:
            old = self.kept.pop(0)
            for suffix in (".index", ".data-00000-of-00001", ".meta"):
                Path(f"{old}{suffix}").unlink(missing_ok=True)
        # TF records absolute paths when the save dir is absolute (reference §5.2).
        shown = [str(p) if self.directory.is_absolute() else p.name for p in self.kept]
        lines = [f'model_checkpoint_path: "{shown[-1]}"'] + [
            f'all_model_checkpoint_paths: "{s}"' for s in shown
        ]
        (self.directory / self.state_file).write_text("\n".join(lines) + "\n")
        return path


# ------------------------------------------------------------------------------------------- data


def rows(csv_path: str) -> list[dict[str, str]]:
    with open(csv_path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def alphabet_size(path: str, version: str) -> int:
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    labels = [line for line in lines if line and not line.startswith("#")]
    return len(labels)


# ------------------------------------------------------------------------------------------- the program


class StandIn:
    def __init__(self, version: str, flags: dict) -> None:
        self.version = version
        self.legacy = version.startswith("0.6.")
        self.f = flags
        data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        default_ckpt = str(data_home / "deepspeech" / "checkpoints")
        base = flags["checkpoint_dir"] or default_ckpt
        if self.legacy:
            self.load_dir = self.save_dir = Path(base)
        else:
            self.load_dir = Path(flags["load_checkpoint_dir"] or base)
            self.save_dir = Path(flags["save_checkpoint_dir"] or base)
        self.summary_dir = Path(flags["summary_dir"] or data_home / "deepspeech" / "summaries")
        self.epoch_seconds = float(os.environ.get("STANDIN_EPOCH_SECONDS", "0.05"))
        die = os.environ.get("STANDIN_DIE_AT_EPOCH")
        self.die_at = int(die) if die else None
        losses = os.environ.get("STANDIN_DEV_LOSSES")
        self.dev_losses = [float(x) for x in losses.split(",")] if losses else None
        self.outputs = 255 if flags.get("bytes_output_mode") or flags.get("utf8") else None

    # -- geometry of "the model" this invocation builds
    def geometry(self) -> dict:
        size = self.outputs or alphabet_size(self.f["alphabet_config_path"], self.version)
        return {
            "n_hidden": self.f["n_hidden"],
            "alphabet_size": size,
            "layer_norm": bool(self.f.get("layer_norm")),
        }

    # -- loading
    def _candidates(self, for_training: bool) -> list[str]:
        if self.legacy:
            if for_training:
                choice = self.f["load"]
                return {"auto": ["last", "best", "init"]}.get(choice, [choice])
            return ["best", "last"]
        choice = self.f["load_train"] if for_training else self.f["load_evaluate"]
        allowed = ("last", "best", "init", "auto") if for_training else ("last", "best", "auto")
        if choice not in allowed:
            choice = "auto"  # absl does not validate choices; DeepSpeech falls back silently
        if choice == "auto":
            return ["best", "last", "init"] if for_training else ["best", "last"]
        return [choice]

    def load(self, *, for_training: bool) -> tuple[dict | None, Path | None]:
        methods = self._candidates(for_training)
        for method in methods:
            if method == "init":
                log("I Initializing variables..." if self.legacy else "I Initializing all variables.")
                return None, None
            state = "best_dev_checkpoint" if method == "best" else "checkpoint"
            prefix = read_state(self.load_dir, state)
            what = "best validating" if method == "best" else "most recent"
            if prefix is None:
                if not self.legacy:
                    log(f"I Could not find {what} checkpoint.")
                continue
            weights = read_weights(prefix)
            if self.legacy:
                kind = "best validation" if method == "best" else "most recent"
                log(f"I Restored variables from {kind} checkpoint at {prefix}, step {weights['step']}")
            else:
                log(f"I Loading {what} checkpoint from {prefix}")
            return weights, prefix
        if self.legacy:
            if for_training:
                raise Fatal(
                    f"E Unable to load {self.f['load']} model from specified checkpoint dir - consider using load"
                    ' option "auto" or "init".'
                )
            raise Fatal(f"E Could not load checkpoint from {self.load_dir}")
        raise Fatal(f"E All initialization methods failed ({methods}).")

    def check_compatible(self, weights: dict, *, for_training: bool) -> None:
        mine = self.geometry()
        drop = self.f.get("drop_source_layers", 0) if for_training else 0
        if weights["alphabet_size"] != mine["alphabet_size"] and drop < 1:
            raise ValueError(
                f"Cannot feed value of shape ({weights['alphabet_size'] + 1},) for Tensor "
                f"'layer_6/bias/Initializer/zeros:0', which has shape '({mine['alphabet_size'] + 1},)'"
            )
        if weights["n_hidden"] != mine["n_hidden"] or weights["layer_norm"] != mine["layer_norm"]:
            raise ValueError(
                f"Cannot feed value of shape ({weights['n_hidden']},) for Tensor 'layer_1/bias/Initializer/zeros:0',"
                f" which has shape '({mine['n_hidden']},)'"
            )
        if for_training and weights.get("cudnn"):
            cudnn_graph = self.f.get("train_cudnn") or self.f.get("use_cudnn_rnn")
            if not cudnn_graph and not self.f.get("load_cudnn") and not self.f.get("cudnn_checkpoint"):
                raise Fatal(
                    "E Tried to load a CuDNN RNN checkpoint but there were more missing variables than just the"
                    " Adam moment tensors."
                )

    # -- phases
    def run(self) -> int:
        if not self.legacy and self.f["train_cudnn"] and self.f["load_cudnn"]:
            raise Fatal("E Trying to use --train_cudnn, but --load_cudnn was also specified.")
        if self.version.startswith("0.9.") and self.f["cache_for_epochs"] and self.f["feature_cache"]:
            pass  # crashes only when the cache is invalidated; the stand-in keeps no cache
        if not self.legacy and self.f["scorer_path"] and not os.path.isfile(self.f["scorer_path"]):
            raise RuntimeError(f"CreateModel failed: could not read scorer file {self.f['scorer_path']}")
        if self.f["train_files"]:
            # DeepSpeech swallows SIGINT during training and goes on without saving.
            with contextlib.suppress(KeyboardInterrupt):
                self.train()
        if self.f["test_files"]:
            split = self.f.get("load_checkpoint_dir") != self.f.get("save_checkpoint_dir")
            if not self.legacy and split and self.f["train_files"]:
                log(
                    "WARNING: You specified different values for --load_checkpoint_dir and"
                    " --save_checkpoint_dir, but you are running training and testing in a single"
                    " invocation. The testing step will respect --load_checkpoint_dir, and thus WILL NOT"
                    " TEST THE CHECKPOINT CREATED BY THE TRAINING STEP."
                )
            self.test()
        if self.f["export_dir"]:
            self.export()
        return 0

    def train(self) -> None:
        f = self.f
        self.save_dir.mkdir(parents=True, exist_ok=True)
        with open(self.save_dir / "flags.txt", "w", encoding="utf-8") as handle:
            for name in sorted(f):
                value = f[name]
                if isinstance(value, list):
                    value = ",".join(value)
                handle.write(f"--{name}={value}\n")
        (self.summary_dir / "train").mkdir(parents=True, exist_ok=True)
        (self.summary_dir / "train" / "events.out.tfevents.standin").write_text("stand-in\n")

        weights, prefix = self.load(for_training=True)
        geometry = self.geometry()
        if weights is not None:
            self.check_compatible(weights, for_training=True)
        step = weights["step"] if weights else 0
        if (
            weights is not None
            and weights.get("learning_rate") is not None
            and not f.get("force_initialize_learning_rate")
        ):
            learning_rate = float(weights["learning_rate"])  # the checkpoint's LR wins (reference §5.5)
        else:
            learning_rate = float(f["learning_rate"])
        epochs_before = weights.get("epochs_trained", 0) if weights else 0
        lineage = (weights.get("lineage", []) if weights else []) + [str(self.save_dir)]
        cudnn = bool(f.get("train_cudnn") or f.get("use_cudnn_rnn"))

        train_rows = sum(len(rows(p)) for p in f["train_files"].split(","))
        steps = train_rows // f["train_batch_size"]
        dev_files = [p for p in f["dev_files"].split(",") if p]
        train_saver = Saver(self.save_dir, "train", "checkpoint", f["max_to_keep"])
        best_saver = Saver(self.save_dir, "best_dev", "best_dev_checkpoint", 1)

        def snapshot(epochs_trained: int) -> dict:
            return {
                "standin": True,
                **geometry,
                "cudnn": cudnn,
                # 0.6.x keeps no learning-rate variable in its checkpoints.
                "learning_rate": None if self.legacy else learning_rate,
                "epochs_trained": epochs_trained,
                "lineage": lineage,
                "loaded_from": str(prefix) if prefix else "init",
                "drop_source_layers": f.get("drop_source_layers", 0),
            }

        log("I STARTING Optimization")
        started = time.monotonic()
        best = math.inf
        history: list[float] = []
        since_best = since_plateau = 0
        last_save = time.monotonic()
        for epoch in range(f["epochs"]):
            epoch_start = time.monotonic()
            self._phase_start(epoch, "Training", None)
            loss = 0.0
            for i in range(steps):
                if self.die_at == epoch and i >= steps // 2:
                    raise RuntimeError(f"stand-in: simulated crash in epoch {epoch} at step {step}")
                time.sleep(self.epoch_seconds / max(steps, 1))
                step += 1
                loss = 100.0 / (1 + epochs_before + epoch + (i + 1) / steps)
                if f["show_progressbar"]:
                    self._bar(epoch, "Training", epoch_start, i + 1, loss, None, final=False)
                if time.monotonic() - last_save >= f["checkpoint_secs"]:
                    train_saver.save(step, snapshot(epochs_before + epoch))
                    last_save = time.monotonic()
            if self.die_at == epoch and steps < 2:
                raise RuntimeError(f"stand-in: simulated crash in epoch {epoch} at step {step}")
            if f["show_progressbar"]:
                self._bar(epoch, "Training", epoch_start, steps, loss, None, final=True)
            else:
                log(f"I Finished training epoch {epoch} - loss: {loss:.6f}")
            train_saver.save(step, snapshot(epochs_before + epoch + 1))
            last_save = time.monotonic()

            if dev_files:
                dev_loss = self._validate(epoch, dev_files, loss)
                history.append(dev_loss)
                if dev_loss < best:
                    improved = best - dev_loss
                    best = dev_loss
                    path = best_saver.save(step, snapshot(epochs_before + epoch + 1))
                    log(f"I Saved new best validating model with loss {dev_loss:.6f} to: {path}")
                else:
                    improved = 0.0
                min_delta = 0.0 if self.legacy else f["es_min_delta"]
                since_best = 0 if improved > min_delta else since_best + 1
                since_plateau = 0 if improved > min_delta else since_plateau + 1
                if f["early_stop"]:
                    if self.legacy and len(history) > f["es_steps"] and since_best >= f["es_steps"]:
                        window = history[-f["es_steps"] :]
                        mean = sum(window) / len(window)
                        log(
                            f"I Early stop triggered as (for last {f['es_steps']} steps) validation loss:"
                            f" {dev_loss:.6f} with standard deviation: 0.000000 and mean: {mean:.6f}"
                        )
                        break
                    if not self.legacy and since_best >= f["es_epochs"]:
                        log(
                            f"I Early stop triggered as the loss did not improve the last {f['es_epochs']} epochs"
                        )
                        break
                if not self.legacy and f["reduce_lr_on_plateau"] and since_plateau >= f["plateau_epochs"]:
                    # DeepSpeech reloads best_dev from the *load* dir here (reference §5.5).
                    reloaded = read_state(self.load_dir, "best_dev_checkpoint")
                    if reloaded is not None:
                        log(f"I Loading best validating checkpoint from {reloaded}")
                        source = read_weights(reloaded)
                        lineage = [*source.get("lineage", []), str(self.save_dir)]
                        prefix = reloaded
                    learning_rate *= f["plateau_reduction"]
                    log(f"I Encountered a plateau, reducing learning rate to {learning_rate}")
                    since_plateau = 0
            if f["show_progressbar"]:
                log(DASHES)
        duration = datetime.timedelta(seconds=time.monotonic() - started)
        log(f"I FINISHED optimization in {duration}")

    def _phase_start(self, epoch: int, phase: str, dataset: str | None) -> None:
        if self.f["show_progressbar"]:
            return
        if phase == "Training":
            log(f"I Training epoch {epoch}...")
        else:
            log(f"I Validating epoch {epoch} on {dataset}...")

    def _bar(
        self,
        epoch: int,
        phase: str,
        start: float,
        steps: int,
        loss: float,
        dataset: str | None,
        *,
        final: bool,
    ) -> None:
        text = (
            f"Epoch {epoch} | {phase:>10} | Elapsed Time: {elapsed(time.monotonic() - start)} | Steps: {steps}"
            f" | Loss: {loss:.6f}"
        )
        if dataset:
            text += f" | Dataset: {dataset}"
        sys.stdout.write(("\r" + text) + ("\n" if final else ""))
        sys.stdout.flush()

    def _validate(self, epoch: int, dev_files: list[str], train_loss: float) -> float:
        total = weighted = 0.0
        for dev in dev_files:
            start = time.monotonic()
            self._phase_start(epoch, "Validation", dev)
            n = len(rows(dev))
            batch = self.f["dev_batch_size"]
            dev_steps = n // batch if self.legacy else math.ceil(n / batch)
            if dev_steps == 0:
                raise ZeroDivisionError("float division by zero")
            if self.dev_losses:
                loss = self.dev_losses[min(epoch, len(self.dev_losses) - 1)]
            else:
                loss = train_loss * 0.9
            if self.f["show_progressbar"]:
                self._bar(epoch, "Validation", start, dev_steps, loss, dev, final=True)
            else:
                log(f"I Finished validating epoch {epoch} on {dev} - loss: {loss:.6f}")
            total += dev_steps
            weighted += loss * dev_steps
        return weighted / total

    def test(self) -> None:
        f = self.f
        if self.legacy and f["lm_binary_path"] and not os.path.isfile(f["lm_binary_path"]):
            raise OSError(f"stand-in: cannot open language model {f['lm_binary_path']}")
        weights, prefix = self.load(for_training=False)
        assert weights is not None
        self.check_compatible(weights, for_training=False)
        samples: list[dict] = []
        for test_file in [p for p in f["test_files"].split(",") if p]:
            data = rows(test_file)
            steps = (
                len(data) // f["test_batch_size"]
                if self.legacy
                else math.ceil(len(data) / f["test_batch_size"])
            )
            if steps == 0:
                raise ZeroDivisionError("division by zero")
            log(f"Testing model on {test_file}")
            if not f["show_progressbar"]:
                log("I Test epoch...")
            log(f"Test epoch | Steps: {steps} | Elapsed Time: 0:00:00")
            results = [self._sample(row, test_file, weights) for row in data]
            wd = sum(r["word_distance"] for r in results)
            wl = sum(r["word_length"] for r in results)
            cd = sum(r["char_distance"] for r in results)
            cl = sum(r["char_length"] for r in results)
            mean_loss = sum(r["loss"] for r in results) / len(results)
            log(
                f"Test on {test_file} - WER: {min(1.0, wd / max(wl, 1)):.6f}, CER: {min(1.0, cd / max(cl, 1)):.6f},"
                f" loss: {mean_loss:.6f}"
            )
            ordered = sorted(results, key=lambda r: r["wer"])
            for title, chunk in (("Best WER:", ordered[: f["report_count"]]), ("Worst WER:", ordered[-1:])):
                log(DASHES)
                log(title)
                log(DASHES)
                for r in chunk:
                    log(f"WER: {r['wer']:.6f}, CER: {r['cer']:.6f}, loss: {r['loss']:.6f}")
                    log(f" - wav: file://{r['wav_filename']}")
                    log(f' - src: "{r["src"]}"')
                    log(f' - res: "{r["res"]}"')
                    log(DASHES)
            samples.extend(results)
        if f["test_output_file"]:
            samples.sort(key=lambda r: r["wer"])
            with open(f["test_output_file"], "w", encoding="utf-8") as handle:
                json.dump(samples, handle, indent=None if self.legacy else 2, ensure_ascii=False)
        del prefix

    @staticmethod
    def _sample(row: dict[str, str], test_file: str, weights: dict) -> dict:
        src = row["transcript"]
        words = src.split()
        res_words = words[:-1] if len(words) > 1 else words  # the stand-in "model" drops the last word
        res = " ".join(res_words)
        wav = row["wav_filename"]
        if not os.path.isabs(wav):
            wav = os.path.join(os.path.dirname(os.path.abspath(test_file)), wav)
        word_distance = len(words) - len(res_words)
        char_distance = len(src) - len(res)
        return {
            "wav_filename": wav,
            "src": src,
            "res": res,
            "loss": 10.0 + weights["step"] % 7,
            "char_distance": char_distance,
            "char_length": len(src),
            "word_distance": word_distance,
            "word_length": len(words),
            "cer": char_distance / max(len(src), 1),
            "wer": word_distance / max(len(words), 1),
        }

    def export(self) -> None:
        f = self.f
        log("I Exporting the model...")
        export_dir = Path(f["export_dir"])
        if f["export_zip"]:
            raise Fatal("E stand-in: --export_zip is not imitated")
        if f["remove_export"] and export_dir.exists():
            if self.version.startswith("0.9."):
                raise AttributeError("module 'tensorflow._api.v1.io.gfile' has no attribute 'remove_remote'")
            for child in export_dir.iterdir():
                child.unlink()
        if self.legacy:
            prefix = read_state(self.load_dir, "checkpoint")  # 0.6.x exports the most recent checkpoint only
            if prefix is None:
                raise AttributeError("'NoneType' object has no attribute 'model_checkpoint_path'")
            weights = read_weights(prefix)
        else:
            weights, prefix = self.load(for_training=False)
            assert weights is not None
        self.check_compatible(weights, for_training=False)
        export_dir.mkdir(parents=True, exist_ok=True)
        name = "output_graph" if self.legacy else f["export_file_name"]
        suffix = ".tflite" if f["export_tflite"] else ".pb"
        info = {"standin": True, "loaded_from": str(prefix), "weights": weights, "version": self.version}
        (export_dir / f"{name}{suffix}").write_text(
            "DEEPSPEECH STAND-IN: not a model\n" + json.dumps(info, indent=1) + "\n"
        )
        if not self.legacy:
            md = (
                export_dir
                / f"{f['export_author_id']}_{f['export_model_name']}_{f['export_model_version']}.md"
            )
            md.write_text(
                "---\n"
                f"author: {f['export_author_id']}\nmodel_name: {f['export_model_name']}\n"
                f"model_version: {f['export_model_version']}\ncontact_info: {f['export_contact_info']}\n"
                f"license: {f['export_license']}\nlanguage: {f['export_language']}\n"
                f"runtime: {'tflite' if f['export_tflite'] else 'tensorflow'}\n"
                f"min_ds_version: {f['export_min_ds_version']}\nmax_ds_version: {f['export_max_ds_version']}\n"
                "acoustic_model_url: <replace this with a publicly available URL of the acoustic model>\n"
                "scorer_url: <replace this with a publicly available URL of the scorer, if present>\n"
                "---\n"
                f"{f['export_description']}\n"
            )
        log(f"I Models exported at {export_dir}")


def main(version: str, argv: list[str]) -> int:
    # DeepSpeech reads `--log_level` from raw argv before flag parsing (reference §2).
    if "--log_level" in argv:
        at = argv.index("--log_level")
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = argv[at + 1] if at + 1 < len(argv) else ""
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    try:
        flags, _ = standin_flags.parse(version, argv)
    except standin_flags.FlagsError as exc:
        print(f"FATAL Flags parsing error: {exc}", file=sys.stderr, flush=True)
        print("Pass --helpshort or --helpfull to see help on flags.", file=sys.stderr, flush=True)
        return 1
    try:
        return StandIn(version, flags).run()
    except Fatal as exc:
        log(str(exc))
        return 1
    except Exception:  # DeepSpeech dies with a traceback on any uncaught exception
        traceback.print_exc()
        sys.stderr.flush()
        return 1
