"""The trainer's own cost on real training: `deepspeech-trainer train` from S3 against the same engine run raw.

Same data (espeak-ng speech made by `prepare`), same flags, same engine (DeepSpeech 0.9.3 where its source
is available, else Coqui STT 1.4.0; BENCH_ENGINE picks). Ours: the whole `train` command — staging from S3,
the training, test and export invocations, checkpoint syncs, publish, smoke test. Raw: the very invocations
the trainer logged (`train:`, `test:`, `export:` lines), run one after another on the data the trainer had
already staged, with a fresh checkpoint folder: what a user of the tutorial would run by hand. Both report
the time to the first training step (the first `Epoch 0 |`/`Training epoch 0` line). Target: ours ≤ 1.10×
raw on a training of at least a minute.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from bench.common import BenchCluster, Record, log, ratio_time
from tests import engines
from tests.cluster.config import REPO
from tests.e2e.dataset import prepare_to_s3, speak_pairs

BUCKET = "bench-train"
TARGET = 1.10
TRAINER = REPO / ".venv" / "bin" / "deepspeech-trainer"
FIRST_STEP = re.compile(r"(Epoch 0 +\|  Training|Training epoch 0)")
INVOCATION = re.compile(r"INFO deepspeech_trainer\.train: (train|test|export): (.+)$")


def _engine() -> engines.Engine:
    wanted = os.environ.get("BENCH_ENGINE")
    for name in [wanted] if wanted else ["deepspeech-0.9.3", "coqui-stt-1.4.0"]:
        if (found := engines.find(name)) is not None:
            return found
    raise SystemExit(f"bench training: {engines.skip_reason(wanted or 'coqui-stt-1.4.0')}")


def _timed(command: list[str], env: dict[str, str], cwd: Path, log_file: Path) -> tuple[float, float | None]:
    """Wall time of a command and the time its output first showed a training step."""
    started = time.monotonic()
    first: float | None = None
    with log_file.open("a") as out:
        proc = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if first is None and FIRST_STEP.search(line):
                first = time.monotonic() - started
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"{shlex.join(command[:4])}… exited {code}; see {log_file}")
    return time.monotonic() - started, first


def run(cluster: BenchCluster, work: Path, quick: bool) -> list[Record]:
    engine = _engine()
    s3_env = cluster.s3_env()
    from tests.cluster.controlplane import s3_client

    s3 = s3_client(s3_env)
    if BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=BUCKET)
    folder = work / "training"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    corpus = f"s3://{BUCKET}/corpus"
    prepare_to_s3(speak_pairs(folder / "speech"), corpus, s3_env, TRAINER)
    epochs, n_hidden = (3, 64) if quick else (30, 256)
    spec = {
        "deepspeech": {"engine": engine.engine, "version": engine.version},
        "data": {
            "train": [f"{corpus}/train.csv"],
            "dev": [f"{corpus}/dev.csv"],
            "test": [f"{corpus}/test.csv"],
            "alphabet": f"{corpus}/alphabet.txt",
        },
        "training": {"epochs": epochs, "nHidden": n_hidden, "learningRate": 0.0001, "cudnn": False},
        "resources": {"gpus": 0},
        "output": {"uri": f"s3://{BUCKET}/models/{int(time.time())}/"},
    }
    (folder / "spec.json").write_text(json.dumps(spec))
    env = {
        **os.environ,
        **s3_env,
        **engine.trainer_env(),
        "DST_GPU_CHECK": "off",  # CPU-only TensorFlow, no GPU on this machine
        "DST_RUN_ID": "g1",
        "DST_TERMINATION_LOG": str(folder / "term"),
    }
    log(f"training overhead: {engine.name}, {epochs} epochs, nHidden {n_hidden}")
    ours_log = folder / "ours.log"
    ours, ours_first = _timed(
        [str(TRAINER), "train", "--spec", str(folder / "spec.json"), "--work-dir", str(folder / "w")],
        env,
        folder,
        ours_log,
    )
    invocations = [m.groups() for line in ours_log.read_text().splitlines() if (m := INVOCATION.search(line))]
    # Raw: the same command lines (and so the same checkpoint folder, emptied first) on the staged data.
    shutil.rmtree(folder / "w" / "checkpoints")
    shutil.rmtree(folder / "w" / "output", ignore_errors=True)
    (folder / "w" / "output").mkdir()
    raw, raw_first = 0.0, None
    legacy = engine.engine == "deepspeech" and engine.version.startswith("0.6")
    cwd = engine.source if legacy and engine.source else folder
    raw_env = {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": f"{engine.python.parent}:{os.environ['PATH']}"}
    for purpose, argv in invocations:
        took, first = _timed(shlex.split(argv), raw_env, cwd, folder / "raw.log")
        if purpose == "train" and raw_first is None and first is not None:
            raw_first = raw + first
        raw += took
    overhead = round(ours / raw, 3) if raw else None
    ratio = ratio_time(ours, raw)  # Record's convention: > 1 = faster than the peer
    details = {
        "engine": engine.name,
        "epochs": epochs,
        "nHidden": n_hidden,
        "invocations": len(invocations),
        "overhead": overhead,
    }
    long_enough = raw >= 60
    return [
        Record(
            "training wall time, trainer vs raw engine",
            round(ours, 1),
            "s",
            f"raw {engine.name}",
            round(raw, 1),
            ratio,
            f"trainer <= {TARGET}x raw (ratio >= {1 / TARGET:.2f}) on >= 60 s",
            (overhead is not None and overhead <= TARGET) if long_enough else None,
            details=details,
        ),
        Record(
            "time to first training step",
            round(ours_first or -1, 1),
            "s",
            f"raw {engine.name}",
            round(raw_first or -1, 1),
            ratio_time(ours_first, raw_first) if ours_first else None,
            None,
            None,
            details=details,
        ),
    ]
