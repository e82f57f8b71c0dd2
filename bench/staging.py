"""Cold and warm staging of N WAV clips (~100 KB each) referenced by a CSV: trainer vs `aws s3 sync`.

Same machine, same S3 server (the bench cluster's SeaweedFS), same prefix, runs alternated
(trainer, aws, trainer, aws, ...), each into a fresh empty folder; both are timed as whole processes
(start-up included: the trainer through bench/trainer_worker.py calling `staging.stage(mode="full")`).
Warm: the trainer again on its last (complete) cache (nothing changed), compared with its own cold
staging call (both measured inside the worker: start-up is not staging); aws-cli's sync of an unchanged
folder is recorded beside it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from bench import s3data
from bench.common import BenchCluster, Record, log, median, ratio_time, timed
from bench.profiling import profile

COLD_TARGET, WARM_TARGET = 2.0, 0.05


def run(cluster: BenchCluster, work: Path, quick: bool) -> list[Record]:
    files = 200 if quick else 5000
    rounds = 2 if quick else 3
    env = cluster.s3_env()
    sizes = s3data.ensure_corpus(env, files)
    total_mb = sum(sizes.values()) / 1e6
    csv = f"s3://{s3data.BUCKET}/{s3data.CORPUS}/train-{files}.csv"
    prefix = f"s3://{s3data.BUCKET}/{s3data.CORPUS}/clips/"
    aws_env = s3data.peer_env(env, work / "aws-home")
    trainer_env = {**aws_env}
    root = work / "staging"
    shutil.rmtree(root, ignore_errors=True)
    ours: list[float] = []
    peer: list[float] = []
    inproc: list[float] = []
    last_cache = last_sync = root
    for i in range(rounds):
        last_cache = root / f"trainer-{i}"
        wall, out = timed(
            s3data.trainer_worker("stage", "--csv", csv, "--cache", str(last_cache)), trainer_env
        )
        result = json.loads(out.strip().splitlines()[-1])
        if result["downloaded"] != files or result["problems"]:
            raise RuntimeError(f"trainer staging incomplete: {result}")
        ours.append(wall)
        inproc.append(result["seconds"])
        last_sync = root / f"aws-{i}"
        wall_aws, _ = timed(s3data.aws(env, "s3", "sync", prefix, str(last_sync)), aws_env)
        got = sum(1 for p in last_sync.rglob("*.wav"))
        if got != files:
            raise RuntimeError(f"aws s3 sync fetched {got}/{files} files")
        peer.append(wall_aws)
        log(
            f"staging round {i}: trainer {wall:.2f}s (in-process {result['seconds']:.2f}s), aws s3 sync {wall_aws:.2f}s"
        )
        if i < rounds - 1:
            shutil.rmtree(last_cache)
            shutil.rmtree(last_sync)
    warm, warm_peer, warm_inproc = [], [], []
    for _ in range(2):
        wall, out = timed(
            s3data.trainer_worker("stage", "--csv", csv, "--cache", str(last_cache)), trainer_env
        )
        result = json.loads(out.strip().splitlines()[-1])
        if result["downloaded"] != 0:
            raise RuntimeError(f"warm staging downloaded {result['downloaded']} files")
        warm.append(wall)
        warm_inproc.append(result["seconds"])
        warm_peer.append(timed(s3data.aws(env, "s3", "sync", prefix, str(last_sync)), aws_env)[0])
    cold, cold_peer = median(ours), median(peer)
    ratio = ratio_time(cold, cold_peer) or 0.0
    warm_in, cold_in = median(warm_inproc), median(inproc)
    details: dict[str, Any] = {
        "files": files,
        "megabytes": round(total_mb, 1),
        "trainer_wall_s": [round(x, 3) for x in ours],
        "trainer_in_process_s": [round(x, 3) for x in inproc],
        "aws_wall_s": [round(x, 3) for x in peer],
        "trainer_mb_s": round(total_mb / cold, 1),
        "aws_mb_s": round(total_mb / cold_peer, 1),
        "trainer_files_s": round(files / cold, 0),
    }
    if ratio < COLD_TARGET:
        # What-if: one more cold run with the S3 client's retry mode switched from adaptive to standard.
        target = root / "whatif"
        wall, _ = timed(
            s3data.trainer_worker("stage", "--csv", csv, "--cache", str(target), "--retry-mode", "standard"),
            trainer_env,
        )
        details["whatif_standard_retries_wall_s"] = round(wall, 3)
        details["whatif_standard_retries_ratio"] = ratio_time(wall, cold_peer)
        shutil.rmtree(target, ignore_errors=True)
        details["profile"] = profile(
            "staging-cold",
            s3data.trainer_worker("stage", "--csv", csv, "--cache", str(root / "profiled")),
            trainer_env,
        )
    shutil.rmtree(root, ignore_errors=True)
    return [
        Record(
            name="trainer.staging.cold",
            value=round(cold, 3),
            unit="s",
            peer="aws s3 sync",
            peer_value=round(cold_peer, 3),
            ratio=ratio,
            target=f">= {COLD_TARGET:.1f}x aws-cli throughput ({files} x ~100 KB)",
            met=ratio >= COLD_TARGET,
            details=details,
        ),
        Record(
            name="trainer.staging.warm",
            value=round(warm_in, 3),
            unit="s",
            peer="trainer cold staging (same call)",
            peer_value=round(cold_in, 3),
            ratio=ratio_time(warm_in, cold_in),
            target=f"<= {WARM_TARGET:.0%} of cold (here {warm_in / cold_in:.1%})",
            met=warm_in <= WARM_TARGET * cold_in,
            details={
                "measured": "staging.stage() inside the worker (a pod's trainer is already running);"
                " process wall times below",
                "trainer_wall_s": [round(x, 3) for x in warm],
                "trainer_in_process_s": [round(x, 3) for x in warm_inproc],
                "aws_sync_nothing_changed_wall_s": [round(x, 3) for x in warm_peer],
                "trainer_cold_wall_s": round(cold, 3),
            },
        ),
    ]
