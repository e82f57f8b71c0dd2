"""`deepspeech-trainer train`: stage → resume or init checkpoint → DeepSpeech → sync → publish → report.

Exit codes (docs/contract.md): 0 done; 65 invalid spec/data; 75 storage trouble or stopped by SIGTERM
after syncing the checkpoint; 1 when DeepSpeech itself failed (the Job's backoff retries, and the
retry resumes from the synced checkpoint).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final

from deepspeech_trainer import flags, gpucheck, s3
from deepspeech_trainer.alphabet import format_alphabet, parse_alphabet
from deepspeech_trainer.checkpoint_files import ALPHABET_TXT, checkpoint_step
from deepspeech_trainer.checkpoint_store import CheckpointStore
from deepspeech_trainer.exitcodes import INVALID, OK, RETRY, InvalidInput, TrainerError, TransientError
from deepspeech_trainer.init_checkpoint import SourceCheckpoint, fetch_init_checkpoint
from deepspeech_trainer.invocation import (
    Invocation,
    ResumeState,
    RunPaths,
    Runtime,
    build_invocations,
    exports_tflite,
    seeds_own_from_source,
)
from deepspeech_trainer.preflight import check_data, setup_logging, summary_text
from deepspeech_trainer.progress import BestModelSaved, EpochFinished, EpochProgress, EpochStarted, Event
from deepspeech_trainer.publish import collect, publish, verify_export
from deepspeech_trainer.report import StatusReporter, write_termination_message
from deepspeech_trainer.run_identity import run_identity
from deepspeech_trainer.runner import Runner, RunResult, child_env, with_interpreter_on_path
from deepspeech_trainer.spec import load_spec
from deepspeech_trainer.staging import write_staged_csvs
from deepspeech_trainer.tf_state_file import newest_train_checkpoint, rewrite_local_state_files
from deepspeech_trainer.validation import settings_from_spec

log = logging.getLogger(__name__)

DEFAULT_SYNC_INTERVAL_S = 120.0
# At most one epoch-end sync per minute: a real epoch on a GPU takes longer, so each is still synced.
DEFAULT_EPOCH_SYNC_MIN_S = 60.0
MAX_TRANSCRIPT = 512
FAILED = 1  # DeepSpeech failed: counted against backoffLimit like any uncaught error


class Stopped(Exception):
    """SIGTERM arrived: sync and exit RETRY."""


@dataclass
class EpochTracker:
    """Counts epochs across restarts, once each: an epoch is done when its checkpoint is on disk.

    DeepSpeech prints `Finished training epoch N` and then saves that epoch's checkpoint, so the line alone
    says nothing about what a resume would find. The epoch counts when the state file (`checkpoint`) first
    names a new checkpoint after that line. `epochs_at` maps each such end-of-epoch checkpoint to the
    epochs it holds, so a sync can record the count of the very checkpoint it uploads. DeepSpeech restarts
    its counter at 0 per invocation; `offset` is what earlier invocations and attempts completed.
    """

    offset: int
    total: int
    done: int = 0
    best_loss: float | None = None
    best_losses: dict[str, float] = field(default_factory=dict)  # best_dev-N → the loss it was saved with
    train_loss: float | None = None
    dev_loss: float | None = None
    epochs_at: dict[str, int] = field(default_factory=dict)
    # Steps per dev CSV (as DeepSpeech names it): the epoch's dev loss is DeepSpeech's step-weighted mean.
    dev_steps: dict[str, int] = field(default_factory=dict)
    _dev_epoch: dict[str, float] = field(default_factory=dict)
    _pending: int | None = None  # epoch (of this invocation) trained but not yet seen saved
    _finished: int = 0  # epochs of this invocation whose "Finished training" line was read
    _newest: str | None = None  # newest train checkpoint named by the state file when last looked
    _reported: str | None = None  # the one whose step was last reported

    def __post_init__(self) -> None:
        self.done = self.offset

    def on_event(self, event: Event) -> bool:
        """Apply one event; True when the epoch's validation is complete (dev_loss is then its mean)."""
        if isinstance(event, BestModelSaved):
            self.best_loss = self.dev_loss = event.loss  # DeepSpeech's own weighted figure
            self.best_losses[PurePosixPath(event.path.strip()).name] = event.loss
        elif isinstance(event, EpochFinished) and event.phase == "train":
            self.train_loss = event.loss
            self._pending = event.epoch
            self._finished = event.epoch + 1
            self._dev_epoch = {}
        elif isinstance(event, EpochFinished) and event.phase == "dev":
            self._dev_epoch[event.dataset or ""] = event.loss
            if len(self._dev_epoch) >= max(1, len(self.dev_steps)):
                weights = {d: self.dev_steps.get(d, 1) for d in self._dev_epoch}
                total = sum(weights.values())
                self.dev_loss = sum(loss * weights[d] for d, loss in self._dev_epoch.items()) / total
                return True
        return False

    @property
    def step(self) -> int | None:
        """Global step of the newest saved checkpoint."""
        return checkpoint_step(self._newest) if self._newest else None

    def step_moved(self) -> bool:
        moved = self._newest != self._reported
        self._reported = self._newest
        return moved and self._newest is not None

    def on_state(self, newest: str | None) -> bool:
        """The state file's newest checkpoint, looked at after a line; True when an epoch just completed."""
        changed = newest is not None and newest != self._newest
        self._newest = newest or self._newest
        if not changed or self._pending is None:
            return False
        assert newest is not None
        done = min(self.offset + self._pending + 1, self.total)
        self._pending = None
        self.epochs_at[newest] = done
        if done > self.done:
            self.done = done
            return True
        return False

    def epochs_in(self, prefix: str | None) -> int:
        """Whole epochs a checkpoint holds: those of the newest end-of-epoch checkpoint not after it (a
        time-based save inside an epoch holds that epoch only in part)."""
        if prefix is None:
            return self.offset
        known = [n for p, n in self.epochs_at.items() if checkpoint_step(p) <= checkpoint_step(prefix)]
        return max([self.offset, *known])

    def start_invocation(self) -> None:
        self.offset = self.done
        self._pending = None
        self._finished = 0

    def invocation_succeeded(self, newest: str | None) -> None:
        """A train invocation exited 0: every epoch it finished is in its last checkpoint. (While it ran,
        output read late can only have under-counted: a save seen before its epoch's line is claimed by
        no epoch.)"""
        done = min(self.offset + self._finished, self.total)
        if newest is not None and done > self.done:
            self.epochs_at[newest] = done
            self.done = done
        self._pending = None


def _epochs_arg(inv: Invocation) -> int:
    argv = inv.argv
    for i, token in enumerate(argv):
        if token == "--epochs" and i + 1 < len(argv):
            return int(argv[i + 1])
        if token.startswith("--epochs="):
            return int(token.split("=", 1)[1])
    return 0


def test_metrics(path: Path, results: list[Any]) -> dict[str, float] | None:
    """WER/CER over all test samples (capped at 1 like DeepSpeech's summary), mean loss."""
    try:
        samples = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        samples = None
    if isinstance(samples, list) and samples:
        words = sum(s.get("word_length", 0) for s in samples)
        chars = sum(s.get("char_length", 0) for s in samples)
        return {
            "wer": min(1.0, sum(s.get("word_distance", 0) for s in samples) / words) if words else 1.0,
            "cer": min(1.0, sum(s.get("char_distance", 0) for s in samples) / chars) if chars else 1.0,
            "loss": sum(float(s.get("loss", 0.0)) for s in samples) / len(samples),
        }
    if results:
        last = results[-1]
        return {"wer": last.wer, "cer": last.cer, "loss": last.loss}
    return None


SMOKE_TEST_SCRIPT: Final = Path(__file__).parent / "engine_scripts" / "smoke_test.py"
SMOKE_TEST_TIMEOUT_S: Final = 300


def smoke_model(export_dirs: list[Path], prefer_tflite: bool) -> Path | None:
    """The exported model to smoke-test: TFLite first where the engine's runtime is TFLite (Coqui STT)."""
    pb = [p for d in export_dirs for p in sorted(d.glob("*.pb"))]
    tflite = [p for d in export_dirs for p in sorted(d.glob("*.tflite"))]
    ordered = (tflite + pb) if prefer_tflite else (pb + tflite)
    return ordered[0] if ordered else None


def smoke_test(
    python: str, model: Path, wav: Path, sample_rate: int, env: Mapping[str, str]
) -> dict[str, Any]:
    """Transcribe one test clip with the exported model under the engine's interpreter.

    Reported, never fatal: a briefly trained model may say nothing useful, and a broken inference package
    must not hide a good model (WER/CER judge quality)."""
    command = [python, str(SMOKE_TEST_SCRIPT), str(model), str(wav), str(sample_rate)]
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=SMOKE_TEST_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {
            "ok": False,
            "model": model.name,
            "file": wav.name,
            "message": f"smoke test did not run: {exc}",
        }
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {
            "ok": False,
            "model": model.name,
            "file": wav.name,
            "message": f"exit {proc.returncode}: {tail}",
        }
    result = json.loads(lines[-1])
    log.info(
        "smoke test: %s on %s -> %r in %.2f s", model.name, wav.name, result["transcript"], result["seconds"]
    )
    return {
        "ok": True,
        "model": model.name,
        "file": wav.name,
        "transcript": str(result["transcript"])[:MAX_TRANSCRIPT],
        "seconds": float(result["seconds"]),
    }


class Trainer:
    def __init__(self, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.run_id = str(args.run_id)
        # The run's folder below output.uri and output.checkpoints (docs/contract.md); the id off-cluster.
        self.run_path = self.env.get("DST_RUN_PATH") or self.run_id
        self.work = Path(args.work_dir).absolute()
        self.spec_path = Path(args.spec)
        self.runner: Runner | None = None
        self.store: CheckpointStore | None = None
        self.tracker: EpochTracker | None = None
        self.reporter = StatusReporter.from_env(self.run_id, self.env)
        self.sync_interval = float(self.env.get("DST_SYNC_INTERVAL_S") or DEFAULT_SYNC_INTERVAL_S)
        min_gap = self.env.get("DST_EPOCH_SYNC_MIN_S")
        self.epoch_sync_min = float(min_gap) if min_gap else DEFAULT_EPOCH_SYNC_MIN_S
        self._stop_sync = threading.Event()
        self._sync_due = threading.Event()
        self._last_sync = float("-inf")
        self._total = 0
        self.stopped_early = False
        self._tracker_lock = threading.Lock()

    # ---- helpers

    def _check_stop(self) -> None:
        if self.runner is not None and self.runner.stop_requested:
            raise Stopped()

    def _sync(self) -> None:
        if self.store is None or self.tracker is None:
            return
        self._last_sync = time.monotonic()
        # A save that no line has followed yet (DeepSpeech stopped right after it) still counts its epoch.
        self._observe_state()
        result = self.store.sync(self.tracker.epochs_in, self.tracker.best_losses)
        if result.checkpoint:
            self.reporter.checkpoint(self.store.uri, self.store.state.epochs_done)

    def _periodic_sync(self) -> None:
        while not self._stop_sync.wait(1.0):
            since = time.monotonic() - self._last_sync
            due = self._sync_due.is_set() and since >= self.epoch_sync_min
            if not due and since < self.sync_interval:
                continue
            self._sync_due.clear()
            try:
                self._sync()
            except TrainerError as exc:  # the next round or the epoch-end sync tries again
                log.warning("periodic checkpoint sync failed: %s", exc)

    def _sync_soon(self, after: str) -> None:
        """Sync now, or once DST_EPOCH_SYNC_MIN_S has passed since the last one: on short epochs a sync per
        epoch costs more than it protects (the periodic, the SIGTERM and the final syncs still run)."""
        if time.monotonic() - self._last_sync >= self.epoch_sync_min:
            self._sync_quietly(after)
        else:
            self._sync_due.set()

    def _on_event(self, event: Event) -> None:
        tracker = self.tracker
        if tracker is None:
            return
        if isinstance(event, EpochProgress) and event.phase == "train":
            self.reporter.progress(
                epoch=tracker.offset + event.epoch + 1,
                epochs=self._total,
                step=event.steps,
                trainLoss=event.loss,
            )
        elif isinstance(event, EpochStarted) and event.phase == "train":
            self.reporter.progress(epoch=tracker.offset + event.epoch + 1, epochs=self._total)
        validated = tracker.on_event(event)
        if isinstance(event, BestModelSaved):
            self._sync_soon("new best_dev")  # the stored best_dev must carry its own loss
            self.reporter.progress(force=True, devLoss=tracker.dev_loss)
        elif validated:
            self.reporter.progress(devLoss=tracker.dev_loss)
        if self._observe_state():
            log.info("epoch %d/%d complete", tracker.done, self._total)
            self.reporter.progress(
                force=True,
                epoch=tracker.done,
                epochs=self._total,
                step=tracker.step,
                trainLoss=tracker.train_loss,
            )
            self._sync_soon(f"epoch {tracker.done}")
        elif tracker.step_moved():
            # A time-based save inside an epoch: with --noshow_progressbar the only sign of movement.
            self.reporter.progress(step=tracker.step)

    def _sync_quietly(self, after: str) -> None:
        try:
            self._sync()
        except TrainerError as exc:  # the next round, the epoch-end or the final sync tries again
            log.warning("checkpoint sync after %s failed: %s", after, exc)

    def _newest_saved(self) -> str | None:
        return newest_train_checkpoint(self.store.local_dir) if self.store is not None else None

    def _observe_state(self) -> bool:
        """Show the tracker the state file's newest checkpoint; True when that completed an epoch."""
        if self.store is None or self.tracker is None:
            return False
        with self._tracker_lock:  # the event thread and the periodic sync both look
            return self.tracker.on_state(newest_train_checkpoint(self.store.local_dir))

    # ---- phases

    def _prepare_checkpoints(
        self, spec: Mapping[str, Any], storage: s3.Storage, paths: RunPaths
    ) -> tuple[ResumeState, SourceCheckpoint | None, list[str] | None]:
        assert self.store is not None
        state = self.store.restore()
        run_alphabet = None
        if state is not None:
            alphabet_file = paths.checkpoint_dir / ALPHABET_TXT
            if alphabet_file.is_file():
                run_alphabet = parse_alphabet(alphabet_file.read_text(encoding="utf-8"), str(alphabet_file))
            resume = ResumeState(
                epochs_done=state.epochs_done, own_checkpoint=True, best_dev_loss=state.best_dev_loss
            )
            return resume, None, run_alphabet
        if paths.checkpoint_dir.exists():
            shutil.rmtree(paths.checkpoint_dir)  # leftovers of an attempt that never synced: start clean
        paths.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        source = None
        uri = (spec.get("initFrom") or {}).get("checkpoint")
        if uri:
            assert paths.source_checkpoint is not None
            source = fetch_init_checkpoint(storage, uri, paths.source_checkpoint, self.work / "downloads")
        return ResumeState(), source, None

    def _stage(
        self,
        spec: Mapping[str, Any],
        storage: s3.Storage,
        paths: RunPaths,
        source: SourceCheckpoint | None,
        run_alphabet: list[str] | None,
    ) -> Any:
        check = check_data(
            spec,
            storage,
            self.work,
            mode="full",
            inspect_checkpoint=False,
            checkpoint_flags=source.flags if source else None,
            checkpoint_alphabet=source.alphabet if source else None,
            run_alphabet=run_alphabet,
        )
        report = check.report
        if not report.ok:
            print(summary_text(report), end="")
            first = report.problems[0] if report.problems else None
            where = f" (first: {first.file}:{first.line} [{first.code}] {first.message})" if first else ""
            raise InvalidInput(f"data validation found {report.problem_count} problem(s){where}")
        targets = {}
        for split in ("train", "dev", "test"):
            for i, path in enumerate(getattr(paths, f"{split}_files")):
                targets[(split, i)] = path
        write_staged_csvs(check.staged, targets)
        paths.alphabet.parent.mkdir(parents=True, exist_ok=True)
        paths.alphabet.write_text(format_alphabet(report.alphabet), encoding="utf-8")
        # Kept beside the checkpoint so a resumed attempt trains with the very same labels.
        shutil.copyfile(paths.alphabet, paths.checkpoint_dir / ALPHABET_TXT)
        scorer = (spec.get("data") or {}).get("scorer")
        if scorer and paths.scorer is not None:
            src = s3.parse_s3_uri(scorer, "spec.data.scorer")
            with s3.s3_errors(scorer, "spec.data.scorer"):
                storage.manager.download(src.bucket, src.key, str(paths.scorer)).result()
        log.info(
            "data ready: %d rows, alphabet %d labels (%s)",
            report.rows,
            len(report.alphabet),
            report.alphabet_source,
        )
        return check

    def run(self) -> tuple[int, dict[str, Any]]:
        spec = load_spec(self.spec_path)
        # Before any download: a GPU the image cannot use would make DeepSpeech train on the CPU silently.
        for gpu in gpucheck.verify(spec, self.env):
            log.info("GPU: %s, compute capability %d.%d, %d MiB", gpu.name, *gpu.capability, gpu.memory_mib)
        self._total = int(spec["training"]["epochs"])
        runtime = Runtime.from_env(self.env)
        paths = RunPaths.in_pod(spec, self.work)
        # 0.6.x imports util.* from its checkout, so the engine runs there when there is one (a Coqui STT
        # image has none: it runs from the work dir).
        cwd = runtime.deepspeech_dir if runtime.deepspeech_dir.is_dir() else self.work
        self.work.mkdir(parents=True, exist_ok=True)
        self.runner = Runner(cwd=cwd, env=self.env, on_event=self._on_event)
        restore_signal = self.runner.handle_sigterm()
        message: dict[str, Any] = {"kind": "train", "runId": self.run_id, "ok": False}
        storage = s3.Storage(s3.StorageConfig.from_spec(spec, self.env))
        syncer: threading.Thread | None = None
        try:
            self.store = CheckpointStore.for_spec(
                storage,
                spec,
                paths.checkpoint_dir,
                self.run_id,
                identity=run_identity(self.run_id, self.env),
                run_path=self.run_path,
            )
            message["checkpoint"] = {"uri": self.store.uri, "epoch": 0}
            resume, source, run_alphabet = self._prepare_checkpoints(spec, storage, paths)
            self.tracker = EpochTracker(resume.epochs_done, self._total)
            self._check_stop()
            check = self._stage(spec, storage, paths, source, run_alphabet)
            batch = int(spec["training"]["batchSize"]["dev"])
            self.tracker.dev_steps = {
                str(path): max(1, -(-len(csv.rows) // batch))
                for path, csv in zip(paths.dev_files, check.staged.split("dev"), strict=True)
            }
            self._check_stop()
            if seeds_own_from_source(spec, resume) and paths.source_checkpoint is not None:
                # 0.6.x has one dir for load and save: fine-tuning starts from a copy of the source.
                for item in paths.source_checkpoint.iterdir():
                    if item.is_file():
                        shutil.copy2(item, paths.checkpoint_dir / item.name)
                rewrite_local_state_files(paths.checkpoint_dir)
            # DeepSpeech opens --test_output_file without creating its folder (export makes its own).
            for folder in (paths.test_output_file.parent, paths.summary_dir):
                folder.mkdir(parents=True, exist_ok=True)
            plan = build_invocations(
                spec, paths, resume, runtime, source_load=(source.load if source else "best")
            )
            log.info(
                "plan: %d invocation(s), %d of %d epoch(s) done", len(plan), resume.epochs_done, self._total
            )
            syncer = threading.Thread(target=self._periodic_sync, name="checkpoint-sync", daemon=True)
            syncer.start()
            test_results: list[Any] = []
            for inv in plan:
                if inv.purpose != "train":
                    # The better best_dev of an earlier attempt is what gets tested and exported.
                    self.store.restore_best_dev()
                if inv.purpose == "train":
                    self.tracker.start_invocation()
                log.info("%s: %s", inv.purpose, shlex.join(inv.argv))
                result = self.runner.run(inv)
                test_results += list(result.test_results)
                self._after(inv, result)
            self._stop_sync.set()
            self._sync()
            message["epochsDone"] = self.tracker.done
            message["checkpoint"] = {"uri": self.store.uri, "epoch": self.store.state.epochs_done}
            if self.stopped_early:
                message["stoppedEarly"] = True

            verify_export(paths.export_dir)
            if exports_tflite(spec):
                verify_export(paths.tflite_export_dir, tflite=True)
            metrics = test_metrics(paths.test_output_file, test_results) if paths.test_files else None
            files = collect(
                [paths.export_dir, paths.tflite_export_dir], [paths.test_output_file, paths.alphabet]
            )
            published = publish(storage, spec["output"]["uri"], self.run_path, files)
            model: dict[str, Any] = {"uri": published.uri, "files": published.files}
            smoked = self._smoke_test(spec, runtime, paths, check)
            if smoked is not None:
                model["smokeTest"] = smoked
            message.update(ok=True, model=model)
            if metrics is not None:
                message["metrics"] = metrics
            self.reporter.progress(force=True, epoch=self.tracker.done, epochs=self._total)
            return OK, message
        except Stopped:
            code, message["error"] = RETRY, "stopped by SIGTERM; checkpoint synced, the next attempt resumes"
            self._final_sync(message)
            return code, message
        except InvalidInput as exc:
            message["error"] = str(exc)
            return INVALID, message
        except TransientError as exc:
            message["error"] = str(exc)
            self._final_sync(message)
            return RETRY, message
        except _DeepSpeechFailed as exc:
            message["error"] = str(exc)
            self._final_sync(message)
            return FAILED, message
        finally:
            self._stop_sync.set()
            if syncer is not None:
                syncer.join(timeout=60)
            restore_signal()
            self.reporter.flush()
            storage.close()

    def _smoke_test(
        self, spec: Mapping[str, Any], runtime: Runtime, paths: RunPaths, check: Any
    ) -> dict[str, Any] | None:
        rows = [
            r.local for split in ("test", "dev", "train") for c in check.staged.split(split) for r in c.rows
        ]
        wavs = [w for w in rows if w is not None]
        model = smoke_model(
            [paths.export_dir, paths.tflite_export_dir],
            prefer_tflite=flags.is_coqui(spec["deepspeech"]["version"]),
        )
        if model is None or not wavs:
            return None
        env = with_interpreter_on_path(child_env(base=self.env), runtime.python)
        return smoke_test(runtime.python, model, wavs[0], settings_from_spec(spec).sample_rate, env)

    def _after(self, inv: Invocation, result: RunResult) -> None:
        assert self.tracker is not None
        if result.interrupted:
            raise Stopped()
        if not result.ok:
            raise _DeepSpeechFailed(result.failure_reason or f"DeepSpeech {inv.purpose} failed")
        if inv.purpose == "train":
            self._observe_state()
            with self._tracker_lock:
                self.tracker.invocation_succeeded(self._newest_saved())
            planned = self.tracker.offset + _epochs_arg(inv)
            if self.tracker.done < planned:
                # DeepSpeech ended training on its own before the planned epochs: early stop.
                self.stopped_early = True
                log.info("early stop: %d of %d epoch(s) trained", self.tracker.done, self._total)
            self._sync()

    def _final_sync(self, message: dict[str, Any]) -> None:
        if self.tracker is not None:
            message["epochsDone"] = self.tracker.done
        try:
            self._sync()
        except TrainerError as exc:
            log.error("final checkpoint sync failed: %s", exc)
        if self.store is not None:
            message["checkpoint"] = {"uri": self.store.uri, "epoch": self.store.state.epochs_done}


class _DeepSpeechFailed(Exception):
    pass


def main(args: argparse.Namespace) -> int:
    setup_logging()
    trainer = Trainer(args)
    try:
        code, message = trainer.run()
    except TrainerError as exc:  # spec could not be loaded, storage config invalid
        code, message = (
            exc.exit_code,
            {"kind": "train", "runId": trainer.run_id, "ok": False, "error": str(exc)},
        )
    except Exception as exc:
        write_termination_message({"kind": "train", "runId": trainer.run_id, "ok": False, "error": repr(exc)})
        raise
    write_termination_message(message)
    if code == OK:
        log.info("training done: model at %s", message.get("model", {}).get("uri"))
    else:
        log.error("train: %s (exit %d)", message.get("error"), code)
    return code
