"""A real dataset in the real S3 server, and helpers to run the trainer's commands against it."""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.unit.trainer_data.wavgen import silence_wav, wav_bytes

REPO = Path(__file__).resolve().parents[3]
STANDIN = REPO / "tests" / "standin"

WORDS = ["hello world", "good morning", "yes", "no thank you", "open the door", "it's fine"]


@pytest.fixture
def s3(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    return boto3.client(
        "s3",
        endpoint_url=s3_env["AWS_ENDPOINT_URL"],
        region_name=s3_env.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
def bucket(s3) -> Iterator[str]:
    name = f"t-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=name)
    yield name
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=name, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=name)


def put_good_split(s3, bucket: str, prefix: str, split: str, n: int, seed: int = 0) -> str:
    """n good clips (tones, 1-1.5 s) under <prefix>/clips and a CSV <prefix>/<split>.csv; returns its URI."""
    lines = ["wav_filename,wav_filesize,transcript"]
    for i in range(n):
        name = f"clips/{split}-{i:03d}.wav"
        data = wav_bytes(seconds=1.0 + (i % 3) * 0.25, freq=220 + 40 * i, seed=seed + i)
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=data)
        lines.append(f"{name},{len(data)},{WORDS[i % len(WORDS)]}")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/{split}.csv", Body=("\n".join(lines) + "\n").encode())
    return f"s3://{bucket}/{prefix}/{split}.csv"


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def base_spec(bucket: str, train: list[str], dev: list[str] = (), test: list[str] = (), **extra) -> dict:
    spec = {
        "deepspeech": {"version": "0.9.3"},
        "data": {"train": list(train), "dev": list(dev), "test": list(test)},
        "training": {"epochs": 2, "nHidden": 64, "cudnn": False},
        "resources": {"gpus": 0},
        "output": {"uri": f"s3://{bucket}/models/"},
    }
    for key, value in extra.items():
        spec[key] = value
    return spec


# VmHWM, not ru_maxrss: after fork + exec, Linux keeps the parent's RSS at fork time in ru_maxrss, so a
# child of a big pytest process would report the parent's size.
_PEAK_RSS_RUNNER = (
    "import sys\n"
    "from deepspeech_trainer import cli\n"
    "code = cli.main(sys.argv[1:])\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
    "print('PEAK_RSS_KIB', hwm, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_preflight_measured(spec_path: Path, work: Path, env: dict[str, str]) -> tuple[int, dict, float]:
    """`deepspeech-trainer preflight --json` in its own process: exit code, JSON output, peak RSS in MiB."""
    import subprocess

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _PEAK_RSS_RUNNER,
            "preflight",
            "--spec",
            str(spec_path),
            "--json",
            "--work-dir",
            str(work),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    peak = [line for line in done.stderr.splitlines() if line.startswith("PEAK_RSS_KIB ")]
    assert peak, done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout), int(peak[-1].split()[1]) / 1024


def standin_env(**extra: str) -> dict[str, str]:
    # The stand-in has no TensorFlow and this machine no GPU: the GPU check is off, as it must be said.
    env = {
        "DST_TF_PYTHON": sys.executable,
        "DST_DEEPSPEECH_DIR": str(STANDIN),
        "STANDIN_VERSION": "0.9.3",
        "DST_GPU_CHECK": "off",
    }
    env.update(extra)
    return env


__all__ = [
    "base_spec",
    "put_good_split",
    "run_preflight_measured",
    "silence_wav",
    "standin_env",
    "wav_bytes",
    "write_spec",
]
