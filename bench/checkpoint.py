"""Checkpoint upload: a 1 GiB TensorFlow-style checkpoint synced by the trainer vs `aws s3 cp` of its data file.

The trainer side is `CheckpointStore.sync()` on a folder holding `checkpoint` (state file naming
train-1), `train-1.data-00000-of-00001` (1 GiB of random bytes), `train-1.index`, `train-1.meta` and
`flags.txt`: it uploads the four files, then the state, run-state and `latest` markers, then lists and
prunes. The peers upload the 1 GiB data file alone, with their default settings: `aws s3 cp` and
`s5cmd cp` (a second record, `trainer.checkpoint.upload.vs_s5cmd`: a Record holds one peer). Runs
alternate; each upload goes to a fresh prefix, deleted afterwards. All timed as whole processes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench import s3data
from bench.common import BenchCluster, Record, log, median, ratio_rate, timed
from bench.profiling import profile

BUCKET = "bench-ckpt"
TARGET = 1.0
MiB = 1024 * 1024


def _make_checkpoint(folder: Path, size: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "train-1.data-00000-of-00001"
    if not data.exists() or data.stat().st_size != size:
        with data.open("wb") as fh:
            left = size
            while left:
                chunk = min(left, 16 * MiB)
                fh.write(os.urandom(chunk))
                left -= chunk
    (folder / "train-1.index").write_bytes(os.urandom(64 * 1024))
    (folder / "train-1.meta").write_bytes(os.urandom(2 * MiB))
    (folder / "flags.txt").write_text("--epochs=1\n")
    (folder / "checkpoint").write_text(
        'model_checkpoint_path: "train-1"\nall_model_checkpoint_paths: "train-1"\n'
    )
    return data


def run(cluster: BenchCluster, work: Path, quick: bool) -> list[Record]:
    size = 128 * MiB if quick else 1024 * MiB
    rounds = 2 if quick else 3
    env = cluster.s3_env()
    s3data.ensure_bucket(s3data.client(env), BUCKET)
    folder = work / "checkpoint"
    data = _make_checkpoint(folder, size)
    worker_env = s3data.peer_env(env, work / "aws-home")
    ours, peer, inproc, s5 = [], [], [], []
    for i in range(rounds):
        dest = f"s3://{BUCKET}/trainer-{i}/"
        wall, out = timed(
            s3data.trainer_worker("checkpoint", "--dir", str(folder), "--dest", dest), worker_env
        )
        result = json.loads(out.strip().splitlines()[-1])
        if data.name not in result["uploaded"]:
            raise RuntimeError(f"trainer did not upload the data file: {result}")
        ours.append(wall)
        inproc.append(result["seconds"])
        s3data.delete_prefix(env, BUCKET, f"trainer-{i}/")
        wall_aws, _ = timed(
            s3data.aws(env, "s3", "cp", str(data), f"s3://{BUCKET}/aws-{i}/{data.name}"), worker_env
        )
        peer.append(wall_aws)
        s3data.delete_prefix(env, BUCKET, f"aws-{i}/")
        wall_s5, _ = timed(
            s3data.s5cmd(env, "cp", str(data), f"s3://{BUCKET}/s5cmd-{i}/{data.name}"), worker_env
        )
        s5.append(wall_s5)
        s3data.delete_prefix(env, BUCKET, f"s5cmd-{i}/")
        log(
            f"checkpoint round {i}: trainer {wall:.2f}s (in-process {result['seconds']:.2f}s), "
            f"aws s3 cp {wall_aws:.2f}s, s5cmd cp {wall_s5:.2f}s"
        )
    mb = size / 1e6
    rate, peer_rate = mb / median(ours), mb / median(peer)
    ratio = ratio_rate(rate, peer_rate) or 0.0
    s5_rate = mb / median(s5)
    ratio_s5 = ratio_rate(rate, s5_rate) or 0.0
    details = {
        "bytes": size,
        "trainer_wall_s": [round(x, 3) for x in ours],
        "trainer_in_process_s": [round(x, 3) for x in inproc],
        "aws_wall_s": [round(x, 3) for x in peer],
        "s5cmd_wall_s": [round(x, 3) for x in s5],
        "ratio_vs_s5cmd": ratio_s5,
    }
    if ratio < TARGET:
        dest = f"s3://{BUCKET}/profiled/"
        details["profile"] = profile(
            "checkpoint-upload",
            s3data.trainer_worker("checkpoint", "--dir", str(folder), "--dest", dest),
            worker_env,
        )
        s3data.delete_prefix(env, BUCKET, "profiled/")
    data.unlink(missing_ok=True)
    return [
        Record(
            name="trainer.checkpoint.upload",
            value=round(rate, 1),
            unit="MB/s",
            peer="aws s3 cp",
            peer_value=round(peer_rate, 1),
            ratio=ratio,
            target=f">= {TARGET:.1f}x aws-cli ({size // MiB} MiB)",
            met=ratio >= TARGET,
            details=details,
        ),
        Record(
            name="trainer.checkpoint.upload.vs_s5cmd",
            value=round(rate, 1),
            unit="MB/s",
            peer="s5cmd cp",
            peer_value=round(s5_rate, 1),
            ratio=ratio_s5,
            target="information (no target set for this peer)",
        ),
    ]
