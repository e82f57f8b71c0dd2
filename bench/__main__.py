"""`python -m bench [names...] [--quick] [--keep-cluster]`: run benchmarks, print figures, write results.

Names: staging, preflight, checkpoint, training, latency, scale (default: all, in that order: the
data-path benchmarks first, then the operator ones, whose 1 000 held pods would otherwise load the machine).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    DEFAULT_CLUSTER_DIR,
    DEFAULT_WORK_DIR,
    BenchCluster,
    Record,
    log,
    machine_info,
    write_results,
)

ORDER = ("staging", "preflight", "checkpoint", "training", "latency", "scale")


def _runner(name: str) -> Callable[..., list[Record]]:
    if name == "latency":
        from bench import operator_latency

        return operator_latency.run
    if name == "scale":
        from bench import operator_scale

        return operator_scale.run
    if name == "staging":
        from bench import staging

        return staging.run
    if name == "preflight":
        from bench import preflight

        return preflight.run
    if name == "checkpoint":
        from bench import checkpoint

        return checkpoint.run
    if name == "training":
        from bench import training

        return training.run
    raise SystemExit(f"unknown benchmark {name!r}; known: {', '.join(ORDER)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {' '.join(ORDER)})")
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--keep-cluster", action="store_true", help="leave the bench cluster running")
    args = parser.parse_args(argv)
    names = args.names or list(ORDER)
    for name in names:
        _runner(name)  # fail fast on a typo
    cluster = BenchCluster(Path(os.environ.get("DSO_CLUSTER_DIR") or DEFAULT_CLUSTER_DIR))
    work = Path(os.environ.get("BENCH_WORK_DIR") or DEFAULT_WORK_DIR)
    work.mkdir(parents=True, exist_ok=True)
    records: list[Record] = []
    notes: list[str] = [
        f"sizes: {'quick' if args.quick else 'full'}",
        f"load average at start: {os.getloadavg()}",
    ]
    failed: list[str] = []
    cluster.up()
    machine: dict[str, Any] = {}
    try:
        for name in ORDER:
            if name not in names:
                continue
            log(f"=== {name} ===")
            started = time.monotonic()
            try:
                got = _runner(name)(cluster, work, args.quick)
            except Exception:
                traceback.print_exc()
                failed.append(name)
                notes.append(f"{name}: failed, see the bench output")
                continue
            notes.append(f"{name}: {time.monotonic() - started:.0f}s, load average after {os.getloadavg()}")
            for r in got:
                print(r.line(), flush=True)
            records += got
        machine = machine_info(cluster)
    finally:
        if not args.keep_cluster:
            cluster.down()
            shutil.rmtree(work, ignore_errors=True)
    print("\nsummary:")
    for r in records:
        print(r.line())
    if args.quick:
        print("\nquick sizes: figures printed only, bench/results/ left as it is")
    else:
        dated = write_results(records, machine, notes)
        print(f"\nwrote bench/results/latest.json and {dated.relative_to(dated.parents[2])}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
