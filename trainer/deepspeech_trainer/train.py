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
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepspeech_trainer import gpucheck, s3
from deepspeech_trainer.alphabet import format_alphabet, parse_alphabet
from deepspeech_trainer.checkpoints import (
    ALPHABET_TXT,
    CheckpointStore,
    SourceCheckpoint,
    fetch_init_checkpoint,
    rewrite_local_state_files,
    run_identity,
)
from deepspeech_trainer.exitcodes import INVALID, OK, RETRY, InvalidInput, TrainerError, TransientError
from deepspeech_trainer.invocation import (
    Invocation,
    ResumeState,
    RunPaths,
    Runtime,
    build_invocations,
    seeds_own_from_source,
)
from deepspeech_trainer.preflight import check_data, setup_logging, summary_text
from deepspeech_trainer.progress import BestModelSaved, EpochFinished, EpochProgress, EpochStarted, Event
from deepspeech_trainer.publish import collect, publish, verify_export
from deepspeech_trainer.report import StatusReporter, write_termination_message
from deepspeech_trainer.runner import Runner, RunResult
from deepspeech_trainer.spec import load_spec
from deepspeech_trainer.staging import write_staged_csvs

log = logging.getLogger(__name__)

DEFAULT_SYNC_INTERVAL_S = 120.0
FAILED = 1  # DeepSpeech failed: counted against backoffLimit like any uncaught error


class Stopped(Exception):
    """SIGTERM arrived: sync and exit RETRY."""


@dataclass
class EpochTracker:
    """Counts epochs across restarts, once each: an epoch is done when trained and validated.

    DeepSpeech restarts its counter at 0 per invocation; `offset` is what earlier invocations and
    attempts completed. Without dev files the epoch counts when the next phase begins.
    """

    offset: int
    total: int
    dev_sets: int
    done: int = 0
    best_loss: float | None = None
    train_loss: float | None = None
    dev_loss: float | None = None
    _trained: int | None = None
    _validated: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.done = self.offset

    def on_event(self, event: Event) -> bool:
        """Apply one event; True when an epoch has just completed."""
        if isinstance(event, BestModelSaved):
            self.best_loss = event.loss
        elif isinstance(event, EpochFinished) and event.phase == "train":
            self.train_loss = event.loss
            self._trained = event.epoch
            if self.dev_sets == 0:
                return self._complete(event.epoch)
        elif isinstance(event, EpochFinished) and event.phase == "dev":
            self._validated[event.epoch] = self._validated.get(event.epoch, 0) + 1
            self.dev_loss = event.loss
            if self._validated[event.epoch] >= self.dev_sets:
                return self._complete(event.epoch)
        return False

    def _complete(self, epoch: int) -> bool:
        done = self.offset + epoch + 1
        if done > self.done:
            self.done = min(done, self.total)
            return True
        return False

    def invocation_finished(self, epochs_in_invocation: int) -> None:
        """A train invocation that exited 0 ran all its epochs (or stopped early on purpose)."""
        self.done = min(self.total, self.offset + epochs_in_invocation)
        self.offset = self.done


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


def smoke_test(model: Path, wavs: list[Path], sample_rate: int) -> str:
    """Transcribe a few test files with the `deepspeech` package when it is importable; never faked."""
    try:
        import deepspeech  # type: ignore[import-not-found]
        import numpy as np  # type: ignore[import-not-found]
    except ImportError:
        msg = "smoke test skipped: the deepspeech inference package is not importable in this image"
        log.info(msg)
        return msg
    import wave

    ds = deepspeech.Model(str(model))
    if ds.sampleRate() != sample_rate:
        raise RuntimeError(f"exported model expects {ds.sampleRate()} Hz, training used {sample_rate} Hz")
    for wav in wavs[:3]:
        with wave.open(str(wav), "rb") as fh:
            audio = np.frombuffer(fh.readframes(fh.getnframes()), np.int16)
        text = ds.stt(audio)
        if not isinstance(text, str):
            raise RuntimeError(f"smoke test: stt returned {type(text).__name__}")
        log.info("smoke test %s → %r", wav.name, text)
    return f"smoke test ran on {min(3, len(wavs))} file(s)"


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
        self._stop_sync = threading.Event()
        self._total = 0

    # ---- helpers

    def _check_stop(self) -> None:
        if self.runner is not None and self.runner.stop_requested:
            raise Stopped()

    def _sync(self) -> None:
        if self.store is None or self.tracker is None:
            return
        result = self.store.sync(self.tracker.done, self.tracker.best_loss)
        if result.checkpoint:
            self.reporter.checkpoint(self.store.uri, self.store.state.epochs_done)

    def _periodic_sync(self) -> None:
        while not self._stop_sync.wait(self.sync_interval):
            try:
                self._sync()
            except TrainerError as exc:  # the next round or the epoch-end sync tries again
                log.warning("periodic checkpoint sync failed: %s", exc)

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
        if tracker.on_event(event):
            log.info("epoch %d/%d complete", tracker.done, self._total)
            self.reporter.progress(
                force=True,
                epoch=tracker.done,
                epochs=self._total,
                trainLoss=tracker.train_loss,
                devLoss=tracker.dev_loss,
            )
            try:
                self._sync()
            except TrainerError as exc:
                log.warning("checkpoint sync after epoch %d failed: %s", tracker.done, exc)

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
        self.runner = Runner(cwd=runtime.deepspeech_dir, env=self.env, on_event=self._on_event)
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
            self.tracker = EpochTracker(resume.epochs_done, self._total, len(paths.dev_files))
            self._check_stop()
            check = self._stage(spec, storage, paths, source, run_alphabet)
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
                    self.tracker.offset = self.tracker.done
                log.info("%s: %s", inv.purpose, shlex.join(inv.argv))
                result = self.runner.run(inv)
                test_results += list(result.test_results)
                self._after(inv, result)
            self._stop_sync.set()
            self._sync()
            message["epochsDone"] = self.tracker.done
            message["checkpoint"] = {"uri": self.store.uri, "epoch": self.store.state.epochs_done}

            verify_export(paths.export_dir)
            if spec["output"].get("tflite"):
                verify_export(paths.tflite_export_dir, tflite=True)
            metrics = test_metrics(paths.test_output_file, test_results) if paths.test_files else None
            files = collect(
                [paths.export_dir, paths.tflite_export_dir], [paths.test_output_file, paths.alphabet]
            )
            published = publish(storage, spec["output"]["uri"], self.run_path, files)
            rate = 16000
            from deepspeech_trainer.validation import settings_from_spec

            rate = settings_from_spec(spec).sample_rate
            wavs = [r.local for c in check.staged.split("test") for r in c.rows if r.local is not None]
            models = sorted(paths.export_dir.glob("*.pb"))
            message["smokeTest"] = (
                smoke_test(models[0], wavs, rate) if models else "no .pb model to smoke-test"
            )
            message.update(ok=True, model={"uri": published.uri, "files": published.files})
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

    def _after(self, inv: Invocation, result: RunResult) -> None:
        assert self.tracker is not None
        if result.interrupted:
            raise Stopped()
        if not result.ok:
            raise _DeepSpeechFailed(result.failure_reason or f"DeepSpeech {inv.purpose} failed")
        if inv.purpose == "train":
            self.tracker.invocation_finished(_epochs_arg(inv))
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
