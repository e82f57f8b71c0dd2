"""The runner against the DeepSpeech stand-in (tests/standin): real subprocesses, real output formats."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
from pathlib import Path

import pytest
from deepspeech_trainer import progress as pg
from deepspeech_trainer.invocation import Invocation, ResumeState, build_invocations
from deepspeech_trainer.runner import FIXED_ENV, Runner, RunResult, child_env, run_invocation

from .conftest import STANDIN_DIR, local_paths, make_spec, standin_runtime

WAIT_S = 60  # generous upper bound for a condition; tests end as soon as it holds


def standin_env(tmp_path: Path, version: str, **extra: str) -> dict[str, str]:
    return {
        "STANDIN_VERSION": version,
        "STANDIN_EPOCH_SECONDS": "0.02",
        "XDG_DATA_HOME": str(tmp_path / "xdg"),  # anything DeepSpeech would put in $HOME stays in tmp
        **extra,
    }


def quiet(stream, line):
    pass


def run_all(
    invocations: list[Invocation], env: dict[str, str], events: list | None = None
) -> list[RunResult]:
    runner = Runner(
        cwd=STANDIN_DIR, env=env, log=quiet, on_event=events.append if events is not None else None
    )
    results = []
    for inv in invocations:
        results.append(runner.run(inv))
        if not results[-1].ok:
            break
    return results


def state_paths(state_file: Path) -> list[str]:
    return re.findall(r'"(.*)"', state_file.read_text())


def test_child_env_forces_unbuffered_output_and_allow_growth():
    env = child_env({"X": "1"}, base={"PYTHONUNBUFFERED": "0", "HOME": "/h"})
    assert env == {"PYTHONUNBUFFERED": "1", "TF_FORCE_GPU_ALLOW_GROWTH": "true", "HOME": "/h", "X": "1"}
    assert FIXED_ENV["PYTHONUNBUFFERED"] == "1"


def test_fresh_093_run_end_to_end(tmp_path):
    spec = make_spec(**{"training.epochs": 2, "output.tflite": True})
    paths = local_paths(spec, tmp_path / "work")
    invocations = build_invocations(spec, paths, ResumeState(), standin_runtime())
    assert [i.purpose for i in invocations] == ["train", "test", "export", "export"]
    events: list = []
    results = run_all(invocations, standin_env(tmp_path, "0.9.3"), events)
    assert [r.ok for r in results] == [True, True, True, True], [r.failure_reason for r in results]
    train_run, test_run, export_run, tflite_run = results

    finished = [(e.epoch, e.phase) for e in events if isinstance(e, pg.EpochFinished)]
    assert finished == [(0, "train"), (0, "dev"), (1, "train"), (1, "dev")]
    assert any(isinstance(e, pg.BestModelSaved) for e in train_run.events)
    assert pg.CheckpointLoaded("init", None) in train_run.events
    assert not train_run.test_results  # training no longer tests: its own invocation does
    (test,) = test_run.test_results
    assert test.dataset == str(paths.test_files[0]) and 0 < test.wer <= 1

    own = paths.checkpoint_dir
    # Test and both exports restore OWN's best_dev explicitly (--checkpoint_dir OWN --load_evaluate best).
    best = state_paths(own / "best_dev_checkpoint")[0]
    for run in (test_run, export_run, tflite_run):
        loads = [e for e in run.events if isinstance(e, pg.CheckpointLoaded)]
        assert loads == [pg.CheckpointLoaded("best", best)], (run.invocation.purpose, loads)
    # 5 samples, batch 1 → 5 steps per epoch; state files hold absolute paths like DeepSpeech's.
    assert state_paths(own / "checkpoint")[0] == str(own / "train-10")
    assert all(Path(p).is_absolute() for p in state_paths(own / "best_dev_checkpoint"))
    for suffix in (".index", ".data-00000-of-00001", ".meta"):
        assert (own / f"train-10{suffix}").is_file()
    assert "--n_hidden=2048" in (own / "flags.txt").read_text().splitlines()
    assert (paths.export_dir / "output_graph.pb").stat().st_size > 0
    assert (paths.export_dir / "author_model_0.0.1.md").is_file()
    assert sorted(os.listdir(paths.tflite_export_dir)) == ["author_model_0.0.1.md", "output_graph.tflite"]
    samples = json.loads(paths.test_output_file.read_text())
    assert set(samples[0]) == {
        "wav_filename", "src", "res", "loss", "char_distance", "char_length", "word_distance", "word_length", "cer", "wer"
    }  # fmt: skip
    assert [s["wer"] for s in samples] == sorted(s["wer"] for s in samples)


def test_legacy_060_run_from_the_checkout_dir(tmp_path):
    spec = make_spec(**{"deepspeech.version": "0.6.0", "training.epochs": 1})
    paths = local_paths(spec, tmp_path / "work")
    invocations = build_invocations(spec, paths, None, standin_runtime())
    # 0.6.0's evaluate cannot restore after `--load init` (NameError: name 'sys' is not defined), so test
    # and export run on their own with `--load best`.
    assert [i.purpose for i in invocations] == ["train", "test", "export"]
    results = run_all(invocations, standin_env(tmp_path, "0.6.0"))
    assert [r.ok for r in results] == [True, True, True], [r.failure_reason for r in results]
    train_run, test_run, export_run = results
    assert pg.CheckpointLoaded("init", None) in train_run.events
    assert not train_run.test_results
    loads = [e for e in test_run.events if isinstance(e, pg.CheckpointLoaded)]
    assert [e.source for e in loads] == ["best"]
    assert loads[0].path is not None and loads[0].path.startswith(str(paths.checkpoint_dir))
    assert test_run.test_results and (paths.export_dir / "output_graph.pb").is_file()
    exported = json.loads((paths.export_dir / "output_graph.pb").read_text().split("\n", 1)[1])
    assert export_run.ok and exported["loaded_from"].startswith(str(paths.checkpoint_dir))
    assert not list(paths.export_dir.glob("*.md"))  # 0.6.x writes no metadata file


def make_source_checkpoint(tmp_path: Path) -> Path:
    """A release-like checkpoint (CuDNN LSTM, learning rate 0.001), state files rewritten to basenames as
    staging does for a downloaded checkpoint (pitfall 14), and the training dir removed."""
    spec = make_spec(**{"training.epochs": 1, "data.test": None})
    paths = local_paths(spec, tmp_path / "release-work")
    (result,) = run_all(
        build_invocations(spec, paths, None, standin_runtime())[:1], standin_env(tmp_path, "0.9.3")
    )
    assert result.ok, result.failure_reason
    release = tmp_path / "release"
    shutil.copytree(paths.checkpoint_dir, release)
    shutil.rmtree(tmp_path / "release-work")
    for state in ("checkpoint", "best_dev_checkpoint"):
        text = (release / state).read_text()
        (release / state).write_text(re.sub(r'"[^"]*/([^/"]+)"', r'"\1"', text))
    return release


def weights(prefix: Path) -> dict:
    return json.loads(Path(f"{prefix}.index").read_text())


def test_finetune_dies_mid_epoch_then_resumes_from_own(tmp_path):
    source = make_source_checkpoint(tmp_path)
    source_step = weights(source / "best_dev-5")["step"]
    spec = make_spec(
        **{
            "initFrom": {"checkpoint": "s3://models/src/"},
            "training.epochs": 3,
            "training.learningRate": 0.0001,
        }
    )
    work = tmp_path / "work"
    paths = local_paths(spec, work)
    shutil.copytree(source, paths.source_checkpoint)

    first = build_invocations(spec, paths, ResumeState(), standin_runtime())
    dying = standin_env(tmp_path, "0.9.3", STANDIN_DIE_AT_EPOCH="1")
    (crashed,) = run_all(first, dying)
    assert crashed.exit_code == 1 and not crashed.interrupted and not crashed.ok
    assert "simulated crash" in crashed.failure_reason
    own = paths.checkpoint_dir
    after_epoch0 = weights(Path(state_paths(own / "checkpoint")[0]))
    assert after_epoch0["step"] == source_step + 5  # the step counter continues from the source
    assert after_epoch0["learning_rate"] == 0.0001  # forced, not the source's 0.001
    # Nothing was written into the source dir: flags.txt goes to the save dir only.
    assert "--learning_rate=0.001" in (paths.source_checkpoint / "flags.txt").read_text().splitlines()
    assert f"--save_checkpoint_dir={own}" in (own / "flags.txt").read_text().splitlines()
    assert sorted(p.name for p in paths.source_checkpoint.glob("train-*.index")) == ["train-5.index"]

    events: list = []
    resumed = build_invocations(
        spec, paths, ResumeState(epochs_done=1, own_checkpoint=True), standin_runtime()
    )
    results = run_all(resumed, standin_env(tmp_path, "0.9.3"), events)
    assert all(r.ok for r in results), [r.failure_reason for r in results]
    loads = [e for e in events if isinstance(e, pg.CheckpointLoaded)]
    assert loads[0] == pg.CheckpointLoaded("last", str(own / f"train-{source_step + 5}"))
    assert all(str(own) in (e.path or "") for e in loads)
    exported = json.loads((paths.export_dir / "output_graph.pb").read_text().split("\n", 1)[1])
    assert exported["loaded_from"].startswith(str(own))
    assert exported["weights"]["step"] == source_step + 15
    assert exported["weights"]["learning_rate"] == 0.0001  # kept from OWN's checkpoint on resume


def test_standin_reproduces_the_combined_invocation_pitfall(tmp_path):
    """Guards the stand-in itself: testing in a load≠save run reads the *source* (why the plan splits it)."""
    source = make_source_checkpoint(tmp_path)
    spec = make_spec(**{"initFrom": {"checkpoint": "s3://models/src/"}, "training.epochs": 1})
    paths = local_paths(spec, tmp_path / "work")
    shutil.copytree(source, paths.source_checkpoint)
    train = build_invocations(spec, paths, ResumeState(), standin_runtime())[0]
    combined = Invocation("train", [*train.argv, "--export_dir", str(paths.export_dir)])
    (result,) = run_all([combined], standin_env(tmp_path, "0.9.3"))
    assert result.ok
    exported = json.loads((paths.export_dir / "output_graph.pb").read_text().split("\n", 1)[1])
    assert exported["loaded_from"].startswith(str(paths.source_checkpoint))


def long_training(tmp_path: Path) -> tuple[Invocation, dict[str, str]]:
    spec = make_spec(**{"training.epochs": 1})
    paths = local_paths(spec, tmp_path / "work")
    train, *_ = build_invocations(spec, paths, None, standin_runtime())
    assert train.purpose == "train"
    return train, standin_env(tmp_path, "0.9.3", STANDIN_EPOCH_SECONDS="120")


def stop_once_training(train: Invocation, env: dict[str, str], sig: int = signal.SIGTERM) -> RunResult:
    """Runs `train`, stops the runner with `sig` as soon as an epoch starts, and returns the result."""
    started = threading.Event()
    runner = Runner(
        cwd=STANDIN_DIR,
        env=env,
        log=quiet,
        on_event=lambda e: isinstance(e, pg.EpochStarted) and started.set(),
    )
    box: list[RunResult] = []
    worker = threading.Thread(target=lambda: box.append(runner.run(train)))
    worker.start()
    assert started.wait(WAIT_S), "training never started"
    runner.stop(sig)
    worker.join(WAIT_S)
    assert not worker.is_alive(), f"the run did not end within {WAIT_S}s of the signal"
    (result,) = box
    return result


def test_stop_sends_sigterm_and_the_run_is_interrupted(tmp_path):
    train, env = long_training(tmp_path)
    result = stop_once_training(train, env)
    assert result.exit_code == -signal.SIGTERM and result.interrupted and not result.ok
    assert result.failure_reason.startswith("interrupted")
    assert result.duration_s < 100
    # DeepSpeech does not save on SIGTERM: nothing of the unfinished epoch is on disk.
    assert not list((tmp_path / "work" / "checkpoints").glob("train-*"))


def test_sigterm_to_the_trainer_is_forwarded_to_deepspeech(tmp_path):
    train, env = long_training(tmp_path)
    before = signal.getsignal(signal.SIGTERM)
    started = threading.Event()

    def kill_us_when_training():
        if started.wait(WAIT_S):
            os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=kill_us_when_training)
    killer.start()
    result = run_invocation(
        train,
        cwd=STANDIN_DIR,
        env=env,
        log=quiet,
        on_event=lambda e: isinstance(e, pg.EpochStarted) and started.set(),
    )
    killer.join(WAIT_S)
    assert started.is_set()
    assert result.interrupted and result.exit_code == -signal.SIGTERM and not result.ok
    assert signal.getsignal(signal.SIGTERM) is before


def test_exit_zero_after_a_signal_is_not_success(tmp_path):
    """SIGINT makes DeepSpeech skip saving and exit 0: the runner must still report an interruption."""
    train, env = long_training(tmp_path)
    # Training only (the plan never attaches test/export to it): with nothing saved, a test or export in
    # the same process would fail and hide the exit 0.
    assert "--test_files" not in train.argv and "--export_dir" not in train.argv
    result = stop_once_training(train, env, signal.SIGINT)
    assert result.exit_code == 0 and result.interrupted and not result.ok


def test_a_stopped_runner_starts_nothing(tmp_path):
    train, env = long_training(tmp_path)
    runner = Runner(cwd=STANDIN_DIR, env=env, log=quiet)
    runner.stop()
    result = runner.run(train)
    assert result.interrupted and not result.ok and result.duration_s == 0.0
    assert not (tmp_path / "work" / "checkpoints" / "flags.txt").exists()


def test_die_in_first_epoch_loses_the_epoch(tmp_path):
    spec = make_spec(**{"training.epochs": 2})
    paths = local_paths(spec, tmp_path / "work")
    train, *_ = build_invocations(spec, paths, None, standin_runtime())
    lines: list[tuple[str, str]] = []
    runner = Runner(
        cwd=STANDIN_DIR,
        env=standin_env(tmp_path, "0.9.3", STANDIN_DIE_AT_EPOCH="0"),
        log=lambda s, x: lines.append((s, x)),
    )
    result = runner.run(train)
    assert result.exit_code == 1 and not result.interrupted
    assert any(e.startswith("RuntimeError: stand-in: simulated crash") for e in result.errors)
    assert ("stderr", "Traceback (most recent call last):") in lines
    assert not list(paths.checkpoint_dir.glob("train-*"))


@pytest.mark.parametrize("version", ["0.6.0", "0.9.3"])
def test_unknown_flag_fails_like_absl(tmp_path, version):
    spec = make_spec(**{"deepspeech.version": version})
    paths = local_paths(spec, tmp_path / "work")
    train, *_ = build_invocations(spec, paths, None, standin_runtime())
    bad = Invocation("train", [*train.argv, "--no_such_flag=1"])
    (result,) = run_all([bad], standin_env(tmp_path, version))
    assert result.exit_code == 1
    assert result.errors == ("FATAL Flags parsing error: Unknown command line flag 'no_such_flag'",)


def test_progress_bars_with_carriage_returns_are_parsed(tmp_path):
    spec = make_spec(**{"training.epochs": 1, "data.test": None})
    paths = local_paths(spec, tmp_path / "work")
    train, *_ = build_invocations(spec, paths, None, standin_runtime())
    with_bars = Invocation(
        "train", ["--show_progressbar" if a == "--noshow_progressbar" else a for a in train.argv]
    )
    events: list = []
    (result,) = run_all([with_bars], standin_env(tmp_path, "0.9.3"), events)
    assert result.ok
    bars = [e for e in events if isinstance(e, pg.EpochProgress)]
    assert [e.steps for e in bars if e.phase == "train"] == [1, 2, 3, 4, 5, 5]
    assert [e.dataset for e in bars if e.phase == "dev"] == [str(paths.dev_files[0])]
