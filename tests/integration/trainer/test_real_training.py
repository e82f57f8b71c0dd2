"""`deepspeech-trainer train` with the real training programs (TensorFlow 1 on CPU) and real S3.

Coqui STT 1.4.0 runs everywhere (`make engines` builds it from PyPI); DeepSpeech 0.9.3 and 0.6.0 run where
their source is available (DSO_DEEPSPEECH_SRC, see tests/engines) and skip otherwise. The data is espeak-ng
speech made by the real `deepspeech-trainer prepare` (the `corpus` fixture).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
from pathlib import Path

import pytest
from deepspeech_trainer import flags

from tests import engines
from tests.cluster.controlplane import s3_client
from tests.cluster.processes import wait_until
from tests.integration.trainer.conftest import REPO, write_spec

pytestmark = [pytest.mark.cluster, pytest.mark.real_training]
TRAINER = REPO / ".venv" / "bin" / "deepspeech-trainer"
ENGINES = ("coqui-stt-1.4.0", "deepspeech-0.9.3", "deepspeech-0.6.0")
TINY = {"nHidden": 32, "learningRate": 0.001, "cudnn": False}


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> engines.Engine:
    return engines.require(request.param)


def spec_for(
    engine: engines.Engine, corpus: str, out: str, *, epochs: int = 2, dev: bool = True, **extra
) -> dict:
    spec = {
        "deepspeech": {"engine": engine.engine, "version": engine.version},
        "data": {
            "train": [f"{corpus}/train.csv"],
            "dev": [f"{corpus}/dev.csv"] if dev else [],
            "test": [f"{corpus}/test.csv"],
            "alphabet": f"{corpus}/alphabet.txt",
        },
        "training": {**TINY, "epochs": epochs},
        "resources": {"gpus": 0},
        "output": {"uri": out},
    }
    spec.update(extra)
    return spec


def trainer_env(engine: engines.Engine, tmp_path: Path, s3_env: dict[str, str], run_id: str = "g1") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "DST_", "STANDIN_"))}
    env.update(s3_env)
    env.update(engine.trainer_env())
    env.update(
        DST_GPU_CHECK="off",  # CPU-only TensorFlow on a machine without a GPU: the check must be off
        DST_TERMINATION_LOG=str(tmp_path / "termination"),
        DST_RUN_ID=run_id,
        XDG_DATA_HOME=str(tmp_path / "xdg"),
    )
    return env


def train(spec: dict, work: Path, env: dict, log: Path) -> tuple[int, dict]:
    path = write_spec(work.parent / f"{work.name}.spec.json", spec)
    with log.open("w") as out:
        code = subprocess.run(
            [str(TRAINER), "train", "--spec", str(path), "--work-dir", str(work)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=600,
        ).returncode
    return code, json.loads(Path(env["DST_TERMINATION_LOG"]).read_text())


def train_ok(spec: dict, work: Path, env: dict, log: Path) -> tuple[dict, str]:
    """`train` that must succeed: its termination message and its log (the log's tail if it fails)."""
    code, message = train(spec, work, env, log)
    text = log.read_text()
    assert code == 0, text[-4000:]
    return message, text


def keys(s3, uri: str) -> set[str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"][len(prefix) :] for page in pages for o in page.get("Contents", [])}


def saved_step(checkpoint_dir: Path) -> int:
    """Global step of the newest training checkpoint, from TensorFlow's own state file."""
    state = (checkpoint_dir / "checkpoint").read_text()
    path = state.split("model_checkpoint_path:", 1)[1].split("\n", 1)[0].strip().strip('"')
    return int(path.rsplit("-", 1)[1])


def test_trains_tests_exports_and_smoke_tests_the_model(engine, corpus, s3_env, tmp_path):
    s3 = s3_client(s3_env)
    out = f"{corpus.rsplit('/', 1)[0]}/models-{engine.name}-{secrets.token_hex(4)}/"
    message, _ = train_ok(
        spec_for(engine, corpus, out),
        tmp_path / "work",
        trainer_env(engine, tmp_path, s3_env),
        tmp_path / "log",
    )
    assert message["ok"] is True and message["epochsDone"] == 2
    # WER/CER from the real test pass: numbers DeepSpeech printed, in [0, 1] after capping.
    assert 0.0 <= message["metrics"]["wer"] <= 1.0 and 0.0 <= message["metrics"]["cer"] <= 1.0
    published = keys(s3, message["model"]["uri"])
    model_file = "output_graph.tflite" if engine.engine == "coqui-stt" else "output_graph.pb"
    assert {model_file, "test_results.json", "alphabet.txt", "SHA256SUMS"} <= published
    smoke = message["model"]["smokeTest"]
    assert smoke["ok"] is True, smoke
    assert smoke["model"] == model_file and isinstance(smoke["transcript"], str) and smoke["seconds"] > 0
    assert "latest" in keys(s3, f"{out}checkpoints/g1/")


@pytest.mark.parametrize("dev", [True, False], ids=["dev", "no-dev"])
def test_sigterm_mid_training_resumes_with_every_epoch_trained_once(engine, dev, corpus, s3_env, tmp_path):
    epochs = 20
    out = f"{corpus.rsplit('/', 1)[0]}/resume-{engine.name}-{secrets.token_hex(4)}/"
    spec = spec_for(engine, corpus, out, epochs=epochs, dev=dev)
    env = trainer_env(engine, tmp_path, s3_env)
    log = tmp_path / "first.log"
    path = write_spec(tmp_path / "spec.json", spec)
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [str(TRAINER), "train", "--spec", str(path), "--work-dir", str(tmp_path / "work")],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: f"epoch 1/{epochs} complete" in log.read_text(), 300, "the first epoch")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == 75, log.read_text()[-4000:]
        finally:
            if proc.poll() is None:
                proc.kill()
    first = json.loads((tmp_path / "termination").read_text())
    assert first["ok"] is False and "SIGTERM" in first["error"] and 1 <= first["epochsDone"] < epochs

    final, _ = train_ok(spec, tmp_path / "work2", env, tmp_path / "second.log")
    assert final["epochsDone"] == epochs
    # The real TF checkpoint says how many steps were trained in all: one epoch = one step per clip
    # (batch size 1, 6 training clips). A skipped epoch or one trained twice changes the count.
    assert saved_step(tmp_path / "work2" / "checkpoints") == epochs * 6


def test_fine_tune_and_transfer_from_a_checkpoint_the_run_produced(engine, corpus, s3_env, tmp_path):
    out = f"{corpus.rsplit('/', 1)[0]}/tune-{engine.name}-{secrets.token_hex(4)}/"
    env = trainer_env(engine, tmp_path, s3_env)
    train_ok(spec_for(engine, corpus, out), tmp_path / "base", env, tmp_path / "base.log")
    source = f"{out}checkpoints/g1/"

    tuned = spec_for(engine, corpus, out, epochs=1, initFrom={"checkpoint": source})
    message, log = train_ok(
        tuned, tmp_path / "tune", trainer_env(engine, tmp_path, s3_env, "g2"), tmp_path / "tune.log"
    )
    assert message["epochsDone"] == 1 and message["model"]["smokeTest"]["ok"] is True
    if flags.is_legacy(engine.version):
        return  # 0.6.x has no transfer learning (dropSourceLayers needs 0.7.4+)
    assert "--load_checkpoint_dir" in log and "--force_initialize_learning_rate" in log

    transfer = spec_for(engine, corpus, out, epochs=1, initFrom={"checkpoint": source, "dropSourceLayers": 1})
    message, log = train_ok(
        transfer, tmp_path / "xfer", trainer_env(engine, tmp_path, s3_env, "g3"), tmp_path / "xfer.log"
    )
    assert "--drop_source_layers 1" in log and message["epochsDone"] == 1


def test_coqui_stt_fine_tunes_a_deepspeech_checkpoint(corpus, s3_env, tmp_path):
    deepspeech, coqui = engines.require("deepspeech-0.9.3"), engines.require("coqui-stt-1.4.0")
    out = f"{corpus.rsplit('/', 1)[0]}/lineage-{secrets.token_hex(4)}/"
    train_ok(
        spec_for(deepspeech, corpus, out),
        tmp_path / "ds",
        trainer_env(deepspeech, tmp_path, s3_env),
        tmp_path / "ds.log",
    )
    tuned = spec_for(coqui, corpus, out, epochs=1, initFrom={"checkpoint": f"{out}checkpoints/g1/"})
    message, _ = train_ok(
        tuned, tmp_path / "stt", trainer_env(coqui, tmp_path, s3_env, "g2"), tmp_path / "stt.log"
    )
    assert message["epochsDone"] == 1 and message["model"]["smokeTest"]["ok"] is True


def test_tflite_export_and_early_stop(engine, corpus, s3_env, tmp_path):
    if flags.is_legacy(engine.version):
        pytest.skip("0.6.x early stop is a different algorithm (es_steps); its TFLite export is not offered")
    out = f"{corpus.rsplit('/', 1)[0]}/early-{engine.name}-{secrets.token_hex(4)}/"
    # The largest minimum improvement the CRD allows: DeepSpeech stops after es_epochs epochs without it.
    spec = spec_for(
        engine, corpus, out, epochs=10,
        training={**TINY, "epochs": 10, "earlyStop": {"epochs": 2, "minDelta": 100.0}},
        output={"uri": out, "tflite": True},
    )  # fmt: skip
    message, _ = train_ok(spec, tmp_path / "work", trainer_env(engine, tmp_path, s3_env), tmp_path / "log")
    assert message.get("stoppedEarly") is True and 1 <= message["epochsDone"] < 10
    assert "output_graph.tflite" in keys(s3_client(s3_env), message["model"]["uri"])


LOADED_BEST = re.compile(
    r"(?:Loading best validating checkpoint from|Restored variables from best validation checkpoint at) "
    r"\S*best_dev-(\d+)"
)


def test_a_resume_tests_and_exports_the_better_stored_best_dev(engine, corpus, s3_env, tmp_path):
    """A restarted engine forgets its best dev loss and saves its first dev epoch as best_dev, however worse:
    the stored, better best_dev must be what the test pass loads and what the run keeps. The stored loss is
    made unbeatable so the resumed engine's new best_dev is always the worse one."""
    s3 = s3_client(s3_env)
    out = f"{corpus.rsplit('/', 1)[0]}/best-{engine.name}-{secrets.token_hex(4)}/"
    env = trainer_env(engine, tmp_path, s3_env)
    train_ok(spec_for(engine, corpus, out, epochs=2), tmp_path / "first", env, tmp_path / "first.log")
    bucket, _, prefix = f"{out}checkpoints/g1/".removeprefix("s3://").partition("/")
    state = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}latest")["Body"].read())
    stored = state["best_dev"]
    assert stored and stored.startswith("best_dev-"), state
    state["best_dev_loss"] = 1e-6
    for name in ("run-state.json", "latest"):
        s3.put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=json.dumps(state).encode())

    message, log = train_ok(
        spec_for(engine, corpus, out, epochs=4), tmp_path / "second", env, tmp_path / "2.log"
    )
    assert message["epochsDone"] == 4
    assert re.search(r"Saved new best validating model", log), "the resumed engine saved its own best_dev"
    assert f"kept the better best_dev checkpoint {stored}" in log
    tested = LOADED_BEST.findall(log)
    assert tested and {f"best_dev-{step}" for step in tested} == {stored}, tested
    after = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}latest")["Body"].read())
    assert after["best_dev"] == stored and after["best_dev_loss"] == 1e-6
