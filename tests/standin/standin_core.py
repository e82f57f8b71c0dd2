"""Behaviour of the DeepSpeech stand-in (see README.md). NOT DeepSpeech: it trains nothing, it sleeps.

Stdlib only; imported as a top-level module by DeepSpeech.py and deepspeech_training/train.py.

What it imitates was read from DeepSpeech's sources (0.6.0 `DeepSpeech.py`/`evaluate.py`, 0.7.4–0.9.3
`train.py`/`evaluate.py`/`util/checkpoints.py`/`util/evaluate_tools.py`) and from TensorFlow 1.14/1.15's
`tf.train.Saver`; nothing here is their code.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import random
import re
import shutil
import struct
import sys
import time
import traceback
import uuid
from pathlib import Path

try:
    import standin_flags
except ImportError:  # imported as tests.standin.standin_core
    from . import standin_flags  # type: ignore[no-redef]

DASHES = "-" * 80
DATA_SUFFIX = ".data-00000-of-00001"
SUFFIXES = (".index", DATA_SUFFIX, ".meta")


class Fatal(Exception):
    """Ends the stand-in with exit 1 after printing its lines (DeepSpeech's log_error + sys.exit(1) paths)."""


class _TFError(Exception):
    """A TensorFlow exception: its traceback line reads `tensorflow.python.framework.errors_impl.<Name>: …`."""

    __module__ = "tensorflow.python.framework.errors_impl"


class NotFoundError(_TFError):
    __module__ = "tensorflow.python.framework.errors_impl"


class InvalidArgumentError(_TFError):
    __module__ = "tensorflow.python.framework.errors_impl"


def log(line: str) -> None:
    print(line, flush=True)


def elapsed(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(seconds)))


def f32(x: float) -> float:
    """`x` rounded to float32, as TensorFlow keeps the learning rate."""
    return struct.unpack("f", struct.pack("f", x))[0]


def f32_str(x: float) -> str:
    """How `str(np.float32(x))` prints: the shortest digits that survive float32, laid out like repr()."""
    value = f32(x)
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if f32(float(text)) == value:
            return repr(float(text))
    return repr(value)


# ------------------------------------------------------------------------------------------- variables

LSTM = "cudnn_lstm/rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell"
OPAQUE = "cudnn_lstm/opaque_kernel"  # the CuDNN graph's single LSTM weight blob
LAYERS = ("layer_1", "layer_2", "layer_3", "layer_5", "layer_6")


def model_variables(*, layer_norm: bool, cudnn: bool) -> list[str]:
    names = [OPAQUE] if cudnn else [f"{LSTM}/bias", f"{LSTM}/kernel"]
    for layer in LAYERS:
        names += [f"{layer}/bias", f"{layer}/weights"]
        if layer_norm and layer != "layer_6":
            names += [f"{layer}/LayerNorm/beta", f"{layer}/LayerNorm/gamma"]
    return names


def graph_variables(purpose: str, *, layer_norm: bool, cudnn: bool, learning_rate: bool) -> list[str]:
    """tf.global_variables() of the graph DeepSpeech builds for `purpose` (train / test / export), sorted
    by name as DeepSpeech 0.7+ loads them. Test and export graphs always use the CPU LSTM cell."""
    model = model_variables(layer_norm=layer_norm, cudnn=cudnn and purpose == "train")
    extra: list[str] = []
    if purpose == "train":
        extra = [f"{v}/{slot}" for v in model for slot in ("Adam", "Adam_1")]
        extra += ["beta1_power", "beta2_power", "global_step"]
        extra += ["learning_rate"] if learning_rate else []
    elif purpose == "test":
        extra = ["global_step"]
    return sorted(model + extra)


def checkpoint_variables(train_graph: list[str]) -> list[str]:
    """What a Saver writes for a training graph: CudnnLSTM saves its weights under the CPU cell's
    (canonical) names, which is what lets a CPU graph load them; its Adam slots keep the opaque name."""
    out: list[str] = []
    for name in train_graph:
        out += [f"{LSTM}/bias", f"{LSTM}/kernel"] if name == OPAQUE else [name]
    return sorted(out)


def saved_variables(weights: dict) -> set[str]:
    if "variables" in weights:
        return set(weights["variables"])
    graph = graph_variables(
        "train",
        layer_norm=bool(weights.get("layer_norm")),
        cudnn=bool(weights.get("cudnn")),
        learning_rate=weights.get("learning_rate") is not None,
    )
    return set(checkpoint_variables(graph))


def in_checkpoint(name: str, saved: set[str]) -> bool:
    # Assumption: the CuDNN graph restores its opaque kernel from the canonical names.
    return f"{LSTM}/kernel" in saved if name == OPAQUE else name in saved


# ------------------------------------------------------------------------------------------- checkpoints


def read_state(directory: str, state_file: str) -> str | None:
    """tf.train.get_checkpoint_state(directory, state_file).model_checkpoint_path, or None without a state
    file. The files it names need not exist: restoring them is what fails then."""
    state = os.path.join(directory, state_file)
    if not os.path.isfile(state):
        return None
    match = re.search(r'^model_checkpoint_path: "(.*)"$', Path(state).read_text(), re.M)
    if not match:
        return None
    path = match[1]
    return path if os.path.isabs(path) else os.path.join(directory, path)


def checkpoint_exists(prefix: str) -> bool:
    return os.path.isfile(f"{prefix}.index")


def read_weights(prefix: str) -> dict:
    return json.loads(Path(f"{prefix}.index").read_text())


def _write_renamed(path: str, data: bytes, temp: str) -> None:
    Path(temp).write_bytes(data)
    os.replace(temp, path)


class Saver:
    """Like tf.train.Saver (TF 1.14/1.15) saving a V2 checkpoint, in its order (checked with strace):
    `.data-*` (temp file + rename), `.index` (likewise), the state file atomically (`<state>.tmp<uuid>` +
    rename), then the deletion of *one* checkpoint beyond max_to_keep (`.meta`, `.index`, `.data-*`), and
    the `.meta` last of all. The keep-list holds only what *this process* saved."""

    def __init__(self, directory: str, prefix: str, state_file: str, keep: int) -> None:
        self.directory, self.prefix, self.state_file, self.keep = directory, prefix, state_file, keep
        self.kept: list[str] = []
        self.to_delete: list[str] = []

    def save(self, step: int, weights: dict) -> str:
        path = os.path.join(self.directory, f"{self.prefix}-{step}")  # what Saver.save returns
        index = json.dumps({**weights, "step": step}, indent=1).encode()
        _write_renamed(
            path + DATA_SUFFIX,
            b"DEEPSPEECH STAND-IN: fake weights\n",
            f"{path}{DATA_SUFFIX}.tempstate{random.getrandbits(63)}",
        )
        _write_renamed(f"{path}.index", index, f"{path}.index.tempstate{random.getrandbits(63)}")
        if self.keep:  # max_to_keep 0/None: nothing is recorded, nothing deleted
            self.kept = [p for p in self.kept if p != path] + [path]
            if len(self.kept) > self.keep:
                self.to_delete.append(self.kept.pop(0))
        shown = list(self.kept)
        if not shown or shown[-1] != path:
            shown.append(path)
        if not os.path.isabs(self.directory):  # TF writes paths relative to a relative save dir
            shown = [os.path.relpath(p, self.directory) for p in shown]
        text = f'model_checkpoint_path: "{shown[-1]}"\n' + "".join(
            f'all_model_checkpoint_paths: "{p}"\n' for p in shown
        )
        state = os.path.join(self.directory, self.state_file)
        _write_renamed(state, text.encode(), f"{state}.tmp{uuid.uuid4().hex}")
        if self.to_delete:
            old = self.to_delete.pop(0)
            for suffix in (".meta", ".index", DATA_SUFFIX):
                Path(f"{old}{suffix}").unlink(missing_ok=True)
        _write_renamed(
            f"{path}.meta", b"DEEPSPEECH STAND-IN: fake graph\n", f"{path}.meta.tmp{uuid.uuid4().hex}"
        )
        return path


# ------------------------------------------------------------------------------------------- data


def rows(csv_path: str) -> list[dict[str, str]]:
    with open(csv_path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def by_size(data: list[dict[str, str]]) -> list[dict[str, str]]:
    """Both dialects order a CSV's samples by wav_filesize."""
    return sorted(data, key=lambda r: int(r.get("wav_filesize") or 0))


def alphabet_size(path: str, version: str) -> int:
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    labels = [line for line in lines if line and not line.startswith("#")]
    return len(labels)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan  # np.mean([]) is nan


def _std(values: list[float]) -> float:
    if not values:
        return math.nan
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))  # np.std: population


def _max(values: list[float]) -> float:
    if not values:
        raise ValueError("zero-size array to reduction operation maximum which has no identity")
    return max(values)


# ------------------------------------------------------------------------------------------- the program


class StandIn:
    def __init__(self, version: str, flags: dict) -> None:
        self.version = version
        self.legacy = version.startswith("0.6.")
        self.v09 = version.startswith("0.9.")
        self.f = flags
        # initialize_globals(): an unknown choice silently means auto (absl does not validate them).
        if self.legacy:
            if flags["load"] not in ("last", "best", "init", "auto"):
                flags["load"] = "auto"
        else:
            if flags["load_train"] not in ("last", "best", "init", "auto"):
                flags["load_train"] = "auto"
            if flags["load_evaluate"] not in ("last", "best", "auto"):
                flags["load_evaluate"] = "auto"  # so `init` too: evaluation never starts from fresh weights
        data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        # Directory strings stay as given: DeepSpeech joins and prints them unnormalised.
        base = flags["checkpoint_dir"] or str(data_home / "deepspeech" / "checkpoints")
        if self.legacy:
            self.load_dir = self.save_dir = base
        else:
            self.load_dir = flags["load_checkpoint_dir"] or base
            self.save_dir = flags["save_checkpoint_dir"] or base
        if not flags["checkpoint_dir"]:
            os.makedirs(base, exist_ok=True)  # xdg.save_data_path creates the default
        self.summary_dir = flags["summary_dir"] or str(data_home / "deepspeech" / "summaries")
        self.epoch_seconds = float(os.environ.get("STANDIN_EPOCH_SECONDS", "0.05"))
        die = os.environ.get("STANDIN_DIE_AT_EPOCH")
        self.die_at = int(die) if die else None
        losses = os.environ.get("STANDIN_DEV_LOSSES")
        self.dev_losses = [float(x) for x in losses.split(",")] if losses else None
        self.outputs = 255 if flags.get("bytes_output_mode") or flags.get("utf8") else None

    # -- the model this invocation builds
    def geometry(self) -> dict:
        size = self.outputs or alphabet_size(self.f["alphabet_config_path"], self.version)
        return {
            "n_hidden": self.f["n_hidden"],
            "alphabet_size": size,
            "layer_norm": bool(self.f.get("layer_norm")),
        }

    @property
    def cudnn_graph(self) -> bool:
        return bool(self.f.get("train_cudnn") or self.f.get("use_cudnn_rnn"))

    def graph(self, purpose: str) -> list[str]:
        return graph_variables(
            purpose,
            layer_norm=bool(self.f.get("layer_norm")),
            cudnn=self.cudnn_graph,
            learning_rate=not self.legacy,  # 0.6.x has no learning-rate variable
        )

    def _feed_error(self, name: str, weights: dict) -> str | None:
        """The ValueError of `Variable.load` when the checkpoint's tensor has another shape, or None."""
        mine = self.geometry()
        if name == f"{LSTM}/bias":
            theirs, ours, init = 4 * weights["n_hidden"], 4 * mine["n_hidden"], "Const"
        elif name == "layer_6/bias":
            theirs, ours, init = weights["alphabet_size"] + 1, mine["alphabet_size"] + 1, "zeros"
        elif re.fullmatch(r"layer_[1235]/(bias|LayerNorm/beta)", name):
            theirs, ours, init = weights["n_hidden"], mine["n_hidden"], "zeros"
        else:
            return None  # weights/kernels/slots come after their bias in name order
        if theirs == ours:
            return None
        return (
            f"Cannot feed value of shape ({theirs},) for Tensor '{name}/Initializer/{init}:0', which has"
            f" shape '({ours},)'"
        )

    # -- loading, 0.7+ (util/checkpoints.py)
    def _methods(self, choice: str, *, for_training: bool) -> list[str]:
        if choice == "auto":
            return ["best", "last", "init"] if for_training else ["best", "last"]
        return [choice]

    def load_or_init(
        self, methods: list[str], purpose: str, *, allow_drop_layers: bool, allow_lr_init: bool = True
    ) -> tuple[dict | None, str | None, bool]:
        """Returns (weights or None for fresh variables, checkpoint prefix, learning rate restored?)."""
        for method in methods:
            if method == "best":
                path = read_state(self.load_dir, "best_dev_checkpoint")
                if path:
                    log(f"I Loading best validating checkpoint from {path}")
                    return self._load_checkpoint(path, purpose, allow_drop_layers, allow_lr_init)
                log("I Could not find best validating checkpoint.")
            elif method == "last":
                path = read_state(self.load_dir, "checkpoint")
                if path:
                    log(f"I Loading most recent checkpoint from {path}")
                    return self._load_checkpoint(path, purpose, allow_drop_layers, allow_lr_init)
                log("I Could not find most recent checkpoint.")
            elif method == "init":
                log("I Initializing all variables.")
                return None, None, False
            else:
                raise Fatal(f"E Unknown initialization method: {method}")
        raise Fatal(f"E All initialization methods failed ({methods}).")

    def _load_checkpoint(
        self, path: str, purpose: str, allow_drop_layers: bool, allow_lr_init: bool
    ) -> tuple[dict, str, bool]:
        if not checkpoint_exists(path):
            raise NotFoundError(
                f"Unsuccessful TensorSliceReader constructor: Failed to find any matching files for {path}"
            )
        weights = read_weights(path)
        saved = saved_variables(weights)
        load = list(self.graph(purpose))
        init: list[str] = []
        if "learning_rate" in load and (
            "learning_rate" not in saved or (self.f.get("force_initialize_learning_rate") and allow_lr_init)
        ):
            load.remove("learning_rate")
            init.append("learning_rate")
        if self.f.get("load_cudnn"):
            missing = [v for v in load if not in_checkpoint(v, saved)]
            for name in missing:
                log(f"W CUDNN variable not found: {name}")
            load = [v for v in load if v not in missing]
            init += missing
            if any("Adam" not in v for v in missing):
                raise Fatal(
                    "E Tried to load a CuDNN RNN checkpoint but there were more missing variables than just"
                    f" the Adam moment tensors. Missing variables: {missing}"
                )
        drop = self.f.get("drop_source_layers", 0)
        if allow_drop_layers and drop > 0:
            if drop >= 6:
                log(
                    "W The checkpoint only has 6 layers, but you are trying to drop all of them or more than"
                    " all of them. Continuing and dropping only 5 layers."
                )
                drop = self.f["drop_source_layers"] = 5
            dropped = ["2", "3", "lstm", "5", "6"][-drop:]
            fresh = [v for v in load if any(layer in v for layer in dropped)]
            load = [v for v in load if v not in fresh]
            init += fresh
        for name in sorted(load):
            log(f"I Loading variable from checkpoint: {name}")
            if not in_checkpoint(name, saved):
                raise NotFoundError(f"Key {name} not found in checkpoint")
            problem = self._feed_error(name, weights)
            if problem:
                raise ValueError(problem)
        for name in sorted(init):
            log(f"I Initializing variable: {name}")
        return weights, path, "learning_rate" in load

    # -- loading, 0.6.x (try_loading: Saver.restore of the whole graph)
    def try_loading(self, state_file: str, caption: str, purpose: str) -> tuple[dict, str] | None:
        path = read_state(self.load_dir, state_file)
        if path is None:
            return None
        if not checkpoint_exists(path):
            raise ValueError(f"The passed save_path is not a valid checkpoint: {path}")
        weights = read_weights(path)
        saved = saved_variables(weights)
        missing = [v for v in self.graph(purpose) if not in_checkpoint(v, saved)]
        if missing:
            raise NotFoundError(
                self._restore_failed("a Variable name or other graph key that is missing")
                + f"\n\nKey {missing[0]} not found in checkpoint"
            )
        assign = self._assign_error(weights)
        if assign:
            restore = self._restore_failed("a mismatch between the current graph and the graph")
            raise Fatal(
                "\n".join(
                    [
                        f"E {restore}",
                        "E ",
                        f"E {assign}",
                        f"E The checkpoint in {path} does not match the shapes of the model. Did you change"
                        " alphabet.txt or the --n_hidden parameter between train runs using the same checkpoint"
                        f" dir? Try moving or removing the contents of {path}.",
                    ]
                )
            )
        log(f"I Restored variables from {caption} checkpoint at {path}, step {weights['step']}")
        return weights, path

    @staticmethod
    def _restore_failed(why: str) -> str:
        return (
            f"Restoring from checkpoint failed. This is most likely due to {why} from the checkpoint. Please"
            " ensure that you have not altered the graph expected based on the checkpoint. Original error:"
        )

    def _assign_error(self, weights: dict) -> str | None:
        mine = self.geometry()
        if weights["alphabet_size"] != mine["alphabet_size"]:
            ours, theirs = mine["alphabet_size"] + 1, weights["alphabet_size"] + 1
        elif weights["n_hidden"] != mine["n_hidden"]:
            ours, theirs = mine["n_hidden"], weights["n_hidden"]
        else:
            return None
        return f"Assign requires shapes of both tensors to match. lhs shape= [{ours}] rhs shape= [{theirs}]"

    def _legacy_train_load(self) -> tuple[dict | None, str | None]:
        f = self.f
        if f["cudnn_checkpoint"]:
            return self._convert_cudnn(f["cudnn_checkpoint"]), None
        choice = f["load"]
        loaded = None
        if choice in ("auto", "last"):
            loaded = self.try_loading("checkpoint", "most recent", "train")
        if loaded is None and choice in ("auto", "best"):
            loaded = self.try_loading("best_dev_checkpoint", "best validation", "train")
        if loaded is not None:
            return loaded
        if choice in ("auto", "init"):
            log("I Initializing variables...")
            return None, None
        raise Fatal(
            f"E Unable to load {choice} model from specified checkpoint dir - consider using load option"
            ' "auto" or "init".'
        )

    def _convert_cudnn(self, source: str) -> dict:
        if self.f["use_cudnn_rnn"]:
            raise Fatal(
                "E Trying to use --cudnn_checkpoint but --use_cudnn_rnn was specified. The --cudnn_checkpoint"
                " flag is only needed when converting a CuDNN RNN checkpoint to a CPU-capable graph. If your"
                " system is capable of using CuDNN RNN, you can just specify the CuDNN RNN checkpoint normally"
                " with --checkpoint_dir."
            )
        log(f"I Converting CuDNN RNN checkpoint from {source}")
        prefix = source
        if os.path.isdir(source):  # tf.train.load_checkpoint takes a dir (its newest) or a prefix
            prefix = read_state(source, "checkpoint") or ""
            if not prefix:
                raise ValueError(
                    f"Couldn't find 'checkpoint' file or checkpoints in given directory {source}"
                )
        if not checkpoint_exists(prefix):
            raise NotFoundError(
                f"Unsuccessful TensorSliceReader constructor: Failed to find any matching files for {prefix}"
            )
        weights = read_weights(prefix)
        saved = saved_variables(weights)
        for name in self.graph("train"):
            problem = in_checkpoint(name, saved) and self._feed_error(name, weights)
            if problem:
                raise ValueError(problem)
        if any("Adam" not in v for v in self.graph("train") if not in_checkpoint(v, saved)):
            raise Fatal(
                "E Tried to load a CuDNN RNN checkpoint but there were more missing variables than just the"
                " Adam moment tensors."
            )
        log("I Initializing missing Adam moment tensors.")
        return weights

    # -- phases
    def run(self) -> int:
        f = self.f
        if not self.legacy:
            # initialize_globals(), then early_training_checks()
            if f["train_cudnn"] and f["load_cudnn"]:
                raise Fatal(
                    "E Trying to use --train_cudnn, but --load_cudnn was also specified. The --load_cudnn flag"
                    " is only needed when converting a CuDNN RNN checkpoint to a CPU-capable graph. If your"
                    " system is capable of using CuDNN RNN, you can just specify the CuDNN RNN checkpoint"
                    " normally with --save_checkpoint_dir."
                )
            if f["scorer_path"] and not os.path.isfile(f["scorer_path"]):
                raise RuntimeError(f"CreateModel failed: could not read scorer file {f['scorer_path']}")
            if f["train_files"] and f["test_files"] and self.load_dir != self.save_dir:
                log(
                    "W WARNING: You specified different values for --load_checkpoint_dir and"
                    " --save_checkpoint_dir, but you are running training and testing in a single invocation."
                    " The testing step will respect --load_checkpoint_dir, and thus WILL NOT TEST THE"
                    " CHECKPOINT CREATED BY THE TRAINING STEP. Train and test in two separate invocations,"
                    " specifying the correct --load_checkpoint_dir in both cases, or use the same location"
                    " for loading and saving."
                )
        if f["train_files"]:
            self.train()
        if f["test_files"]:
            self.test()
        if f["export_dir"]:
            self.export()
        return 0

    def _snapshot(self, geometry: dict, learning_rate: float | None, epochs: int, lineage, prefix) -> dict:
        return {
            "standin": True,
            **geometry,
            "cudnn": self.cudnn_graph,
            # 0.6.x keeps no learning-rate variable in its checkpoints.
            "learning_rate": None if self.legacy else learning_rate,
            "epochs_trained": epochs,
            "lineage": lineage,
            "loaded_from": prefix or "init",
            "drop_source_layers": self.f.get("drop_source_layers", 0),
            "variables": checkpoint_variables(self.graph("train")),
        }

    def train(self) -> None:
        f = self.f
        train_rows = sum(len(rows(p)) for p in f["train_files"].split(","))
        dev_sets = [(p, len(rows(p))) for p in f["dev_files"].split(",") if p]
        metrics_sets = [] if self.legacy else [(p, len(rows(p))) for p in f["metrics_files"].split(",") if p]
        for name in ("train", "dev") if self.legacy else ("train", "dev", "metrics"):
            directory = Path(self.summary_dir) / name  # tf.summary.FileWriter creates it at graph building
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "events.out.tfevents.standin").write_text("stand-in\n")
        os.makedirs(self.save_dir, exist_ok=True)
        with open(os.path.join(self.save_dir, "flags.txt"), "w", encoding="utf-8") as handle:
            for name in sorted(f):
                value = f[name]
                if isinstance(value, list):
                    value = ",".join(value)
                handle.write(f"--{name}={value}\n")

        geometry = self.geometry()
        learning_rate = float(f["learning_rate"])
        if self.legacy:
            weights, prefix = self._legacy_train_load()
        else:
            methods = self._methods(f["load_train"], for_training=True)
            weights, prefix, lr_restored = self.load_or_init(methods, "train", allow_drop_layers=True)
            if weights is not None and lr_restored:
                learning_rate = float(weights["learning_rate"])  # the checkpoint's LR wins (reference §5.5)
        step = weights["step"] if weights else 0
        trained = weights.get("epochs_trained", 0) if weights else 0
        lineage = (weights.get("lineage", []) if weights else []) + [str(self.save_dir)]
        loaded_from = prefix

        steps = train_rows // f["train_batch_size"]
        train_saver = Saver(self.save_dir, "train", "checkpoint", f["max_to_keep"])
        best_saver = Saver(self.save_dir, "best_dev", "best_dev_checkpoint", 1)

        def snapshot(epochs: int) -> dict:
            return self._snapshot(geometry, learning_rate, epochs, lineage, loaded_from)

        log("I STARTING Optimization")
        started = time.monotonic()
        best_dev_loss = math.inf
        dev_losses: list[float] = []
        without_improvement = 0
        try:
            for epoch in range(f["epochs"]):
                # Training
                self._progress(f"Training epoch {epoch}...")
                epoch_start = checkpoint_time = time.monotonic()
                loss = 0.0
                for i in range(steps):
                    if self.die_at == epoch and i >= steps // 2:
                        raise RuntimeError(f"stand-in: simulated crash in epoch {epoch} at step {step}")
                    time.sleep(self.epoch_seconds / max(steps, 1))
                    step += 1
                    loss = 100.0 / (1 + trained + (i + 1) / steps)
                    if f["show_progressbar"]:
                        self._bar(epoch, "Training", epoch_start, i + 1, loss, None, final=False)
                    secs = f["checkpoint_secs"]
                    if secs > 0 and time.monotonic() - checkpoint_time > secs:
                        train_saver.save(step, snapshot(trained))
                        checkpoint_time = time.monotonic()
                if self.die_at == epoch and steps < 2:
                    raise RuntimeError(f"stand-in: simulated crash in epoch {epoch} at step {step}")
                if f["show_progressbar"]:
                    self._bar(epoch, "Training", epoch_start, steps, loss, None, final=True)
                trained += 1
                # The line comes first, then the save (its state file last of the checkpoint's files).
                self._progress(f"Finished training epoch {epoch} - loss: {loss:.6f}")
                train_saver.save(step, snapshot(trained))

                if dev_sets:
                    dev_loss = 0.0
                    total_steps = 0
                    for dev, n in dev_sets:
                        self._progress(f"Validating epoch {epoch} on {dev}...")
                        set_loss, set_steps = self._run_set(epoch, "Validation", dev, n, loss * 0.9)
                        dev_loss += set_loss * set_steps
                        total_steps += set_steps
                        self._progress(f"Finished validating epoch {epoch} on {dev} - loss: {set_loss:.6f}")
                    dev_loss = dev_loss / total_steps
                    dev_losses.append(dev_loss)

                    if not self.legacy:
                        if dev_loss > best_dev_loss - f["es_min_delta"]:
                            without_improvement += 1
                        else:
                            without_improvement = 0
                    if dev_loss < best_dev_loss:
                        best_dev_loss = dev_loss
                        path = best_saver.save(step, snapshot(trained))
                        log(f"I Saved new best validating model with loss {best_dev_loss:.6f} to: {path}")

                    if self.legacy:
                        if f["early_stop"] and len(dev_losses) >= f["es_steps"]:
                            window = dev_losses[-f["es_steps"] : -1]
                            mean_loss, std_loss = _mean(window), _std(window)
                            dev_losses = dev_losses[-f["es_steps"] :]
                            last = dev_losses[-1]
                            if last > _max(dev_losses[:-1]) or (
                                abs(last - mean_loss) < f["es_mean_th"] and std_loss < f["es_std_th"]
                            ):
                                log(
                                    f"I Early stop triggered as (for last {f['es_steps']} steps) validation"
                                    f" loss: {last:.6f} with standard deviation: {std_loss:.6f} and mean:"
                                    f" {mean_loss:.6f}"
                                )
                                break
                    else:
                        if f["early_stop"] and without_improvement == f["es_epochs"]:
                            log(
                                "I Early stop triggered as the loss did not improve the last"
                                f" {without_improvement} epochs"
                            )
                            break
                        if self._plateau(without_improvement):
                            if self.v09:
                                # Reloads best_dev from the *load* dir (reference §5.5), global step included.
                                reloaded, prefix, lr_restored = self.load_or_init(
                                    ["best"], "train", allow_drop_layers=False, allow_lr_init=False
                                )
                                assert reloaded is not None
                                step, trained = reloaded["step"], reloaded.get("epochs_trained", 0)
                                lineage = [*reloaded.get("lineage", []), str(self.save_dir)]
                                loaded_from = prefix
                                learning_rate = (
                                    float(reloaded["learning_rate"])
                                    if lr_restored
                                    else float(f["learning_rate"])
                                )
                            learning_rate = f32(f32(learning_rate) * f32(f["plateau_reduction"]))
                            shown = f32_str(learning_rate)
                            learning_rate = float(shown)
                            log(f"I Encountered a plateau, reducing learning rate to {shown}")
                            if self.v09:
                                path = best_saver.save(step, snapshot(trained))
                                log(f"I Saved best validating model with reduced learning rate to: {path}")

                for source, n in metrics_sets:
                    self._progress(f"Metrics for epoch {epoch} on {source}...")
                    set_loss, _ = self._run_set(epoch, "Metrics", source, n, loss * 0.95)
                    self._progress(f"Metrics for epoch {epoch} on {source} - loss: {set_loss:.6f}")

                if not self.legacy:
                    log(DASHES)
        except KeyboardInterrupt:
            pass  # DeepSpeech swallows SIGINT during training and goes on without saving
        duration = datetime.timedelta(seconds=time.monotonic() - started)
        log(f"I FINISHED optimization in {duration}")

    def _plateau(self, without_improvement: int) -> bool:
        f = self.f
        if not f["reduce_lr_on_plateau"]:
            return False
        if self.v09:
            return without_improvement > 0 and without_improvement % f["plateau_epochs"] == 0
        return without_improvement % f["plateau_epochs"] == 0 and without_improvement > 0  # 0.7/0.8 order

    def _progress(self, message: str) -> None:
        """log_progress: an `I` line only without progress bars."""
        if not self.f["show_progressbar"]:
            log(f"I {message}")

    def _run_set(
        self, epoch: int, phase: str, dataset: str, n: int, default_loss: float
    ) -> tuple[float, int]:
        batch = self.f["dev_batch_size"]
        set_steps = n // batch if self.legacy else math.ceil(n / batch)
        start = time.monotonic()
        if set_steps == 0:
            loss = 0.0
        elif phase == "Validation" and self.dev_losses:
            loss = self.dev_losses[min(epoch, len(self.dev_losses) - 1)]
        else:
            loss = default_loss
        if self.f["show_progressbar"]:
            self._bar(epoch, phase, start, set_steps, loss, dataset, final=True)
        return loss, set_steps

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

    def test(self) -> None:
        f = self.f
        if self.legacy and f["lm_binary_path"] and not os.path.isfile(f["lm_binary_path"]):
            raise OSError(f"stand-in: cannot open language model {f['lm_binary_path']}")
        test_files = [p for p in f["test_files"].split(",") if p]
        datasets = [(p, by_size(rows(p))) for p in test_files]
        if self.legacy:
            loaded = None
            if f["load"] in ("auto", "best"):
                loaded = self.try_loading("best_dev_checkpoint", "best validation", "test")
            if loaded is None and f["load"] in ("auto", "last"):
                loaded = self.try_loading("checkpoint", "most recent", "test")
            if loaded is None:
                print(f"Could not load checkpoint from {self.load_dir}", flush=True)
                # evaluate.py calls sys.exit(1) without importing sys.
                raise NameError("name 'sys' is not defined")
            weights: dict | None = loaded[0]
        else:
            methods = self._methods(f["load_evaluate"], for_training=False)
            weights, _, _ = self.load_or_init(methods, "test", allow_drop_layers=False)
        samples: list[dict] = []
        for test_file, data in datasets:
            print(f"Testing model on {test_file}", flush=True)
            batch = f["test_batch_size"]
            if self.legacy:
                steps = len(data) // batch
                data = data[: steps * batch]  # drop_remainder=True
            else:
                steps = math.ceil(len(data) / batch)
            start = time.monotonic()
            if f["show_progressbar"]:
                for i in range(1, steps + 1):
                    sys.stdout.write(
                        f"\rTest epoch | Steps: {i} | Elapsed Time: {elapsed(time.monotonic() - start)}"
                    )
                sys.stdout.write("\n" if steps else "\rTest epoch | Steps: 0 | Elapsed Time: 0:00:00\n")
                sys.stdout.flush()
            else:
                log("I Test epoch...")
            results = [self._sample(row, test_file, weights) for row in data]
            wer = min(sum(r["word_distance"] for r in results) / sum(r["word_length"] for r in results), 1.0)
            cer = min(sum(r["char_distance"] for r in results) / sum(r["char_length"] for r in results), 1.0)
            mean_loss = sum(r["loss"] for r in results) / len(results)
            key = "cer" if self.outputs else "wer"
            if self.legacy:
                results.sort(key=lambda r: r["loss"])
                results.sort(key=lambda r: r[key], reverse=True)
            else:
                results.sort(key=lambda r: r["loss"], reverse=True)
                results.sort(key=lambda r: r[key])
            self._report(test_file, results, wer, cer, mean_loss)
            samples.extend(results)
        if f["test_output_file"]:
            with open(f["test_output_file"], "w", encoding="utf-8") as handle:
                if self.legacy:
                    json.dump(samples, handle)
                else:
                    json.dump(samples, handle, ensure_ascii=False, indent=2)

    def _report(self, dataset: str, samples: list[dict], wer: float, cer: float, mean_loss: float) -> None:
        count = self.f["report_count"]
        lines = [f"Test on {dataset} - WER: {wer:.6f}, CER: {cer:.6f}, loss: {mean_loss:.6f}", DASHES]

        def single(r: dict) -> list[str]:
            return [
                f"WER: {r['wer']:.6f}, CER: {r['cer']:.6f}, loss: {r['loss']:.6f}",
                f" - wav: file://{r['wav_filename']}",
                f' - src: "{r["src"]}"',
                f' - res: "{r["res"]}"',
                DASHES,
            ]

        if self.legacy:
            for r in samples[:count]:
                lines += single(r)
        else:
            median = int(len(samples) / 2)
            left = int(count / 2)
            groups = (
                ("Best WER: ", samples[:count]),
                ("Median WER: ", samples[median - left : median + count - left]),
                ("Worst WER: ", samples[-count:]),
            )
            for title, chunk in groups:
                lines += [title, DASHES]
                for r in chunk:
                    lines += single(r)
        for line in lines:
            print(line)
        sys.stdout.flush()

    @staticmethod
    def _sample(row: dict[str, str], test_file: str, weights: dict | None) -> dict:
        src = row["transcript"]
        words = src.split()
        res_words = words[:-1] if len(words) > 1 else words  # the stand-in "model" drops the last word
        res = " ".join(res_words)
        wav = row["wav_filename"]
        if not os.path.isabs(wav):
            wav = os.path.join(os.path.dirname(os.path.abspath(test_file)), wav)
        word_distance = len(words) - len(res_words)
        char_distance = len(src) - len(res)
        step = weights["step"] if weights else 0
        return {
            "wav_filename": wav,
            "src": src,
            "res": res,
            "loss": float(10 + step % 7 + len(src) % 5),
            "char_distance": char_distance,
            "char_length": len(src),
            "word_distance": word_distance,
            "word_length": len(words),
            "cer": char_distance / len(src),
            "wer": word_distance / len(words),
        }

    def export(self) -> None:
        f = self.f
        log("I Exporting the model...")
        export_dir = f["export_dir"]
        if f["export_zip"]:
            raise Fatal("E stand-in: --export_zip is not imitated")
        if self.legacy:
            # 0.6.x ignores --load: it freezes the newest checkpoint of `checkpoint`.
            prefix = read_state(self.load_dir, "checkpoint")
            if prefix is None:
                raise AttributeError("'NoneType' object has no attribute 'model_checkpoint_path'")
            self._remove_export(export_dir)
            os.makedirs(export_dir, exist_ok=True)
            if not checkpoint_exists(prefix):
                raise ValueError(f"Input checkpoint '{prefix}' doesn't exist!")
            weights: dict | None = read_weights(prefix)
            assert weights is not None
            assign = self._assign_error(weights)
            if assign:
                restore = self._restore_failed("a mismatch between the current graph and the graph")
                raise InvalidArgumentError(f"{restore}\n\n{assign}")
        else:
            methods = self._methods(f["load_evaluate"], for_training=False)
            weights, prefix, _ = self.load_or_init(methods, "export", allow_drop_layers=False)
            self._remove_export(export_dir)
            os.makedirs(export_dir, exist_ok=True)
        name = "output_graph" if self.legacy else f["export_file_name"]
        suffix = ".tflite" if f["export_tflite"] else ".pb"
        info = {"standin": True, "loaded_from": prefix or "init", "weights": weights, "version": self.version}
        Path(export_dir, f"{name}{suffix}").write_text(
            "DEEPSPEECH STAND-IN: not a model\n" + json.dumps(info, indent=1) + "\n"
        )
        if self.legacy:
            if f["export_tflite"]:
                log("I Exported model for TF Lite engine as output_graph.tflite")
            log(f"I Models exported at {export_dir}")
            return
        log(f"I Models exported at {export_dir}")
        md = os.path.join(
            export_dir, f"{f['export_author_id']}_{f['export_model_name']}_{f['export_model_version']}.md"
        )
        Path(md).write_text(
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
        log(
            f"I Model metadata file saved to {md}. Before submitting the exported model for publishing make sure"
            " all information in the metadata file is correct, and complete the URL fields."
        )

    def _remove_export(self, export_dir: str) -> None:
        if not self.f["remove_export"] or not os.path.isdir(export_dir):
            return
        log("I Removing old export")
        if self.v09:
            # util/io.py's remove_remote calls a gfile function that does not exist.
            raise AttributeError("module 'tensorflow._api.v1.io.gfile' has no attribute 'remove_remote'")
        shutil.rmtree(export_dir)


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
        for line in str(exc).split("\n"):
            log(line)
        return 1
    except Exception:  # DeepSpeech dies with a traceback on any uncaught exception
        sys.stdout.flush()
        traceback.print_exc()
        sys.stderr.flush()
        return 1
