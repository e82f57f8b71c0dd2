"""Subprocess entry for the trainer side of the data-path benchmarks (so it pays process start-up like the
aws-cli peer does). Calls only the trainer's public functions; prints one JSON line with its own timing.

    python -m bench.trainer_worker stage --csv s3://b/k.csv --cache DIR
    python -m bench.trainer_worker preflight --csv s3://b/k.csv --work DIR
    python -m bench.trainer_worker checkpoint --dir DIR --dest s3://b/prefix/
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any


def _spec(csv: str) -> dict[str, Any]:
    return {
        "deepspeech": {"version": "0.9.3"},
        "data": {"train": [csv]},
        "resources": {"gpus": 1},
        "storage": {"endpoint": os.environ["AWS_ENDPOINT_URL"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["stage", "preflight", "checkpoint"])
    parser.add_argument("--csv")
    parser.add_argument("--cache")
    parser.add_argument("--work")
    parser.add_argument("--dir")
    parser.add_argument("--dest")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    from deepspeech_trainer import s3

    imported = time.perf_counter()
    out: dict[str, Any] = {"import_s": round(imported - started, 3)}
    if args.what == "stage":
        from deepspeech_trainer.staging import stage

        spec = _spec(args.csv)
        with s3.Storage(s3.StorageConfig.from_spec(spec)) as storage:
            t0 = time.perf_counter()
            result = stage(spec, storage, Path(args.cache), mode="full", cache_root=Path(args.cache))
            out |= {
                "seconds": time.perf_counter() - t0,
                "rows": result.rows,
                "downloaded": result.stats.downloaded,
                "cached": result.stats.cached,
                "bytes": result.stats.bytes,
                "problems": sum(1 for c in result.csvs for r in c.rows if r.problem),
            }
    elif args.what == "preflight":
        from deepspeech_trainer.preflight import check_data

        spec = _spec(args.csv)
        os.environ.pop("DST_CACHE_DIR", None)
        with s3.Storage(s3.StorageConfig.from_spec(spec)) as storage:
            t0 = time.perf_counter()
            check = check_data(spec, storage, Path(args.work), mode="headers")
            out |= {
                "seconds": time.perf_counter() - t0,
                "rows": check.report.rows,
                "ok": check.report.ok,
                "problem_count": check.report.problem_count,
                "problem_counts": check.report.counts,
                "header_reads": check.staged.stats.header_reads,
                "stage_seconds": check.staged.stats.seconds,
            }
    else:
        from deepspeech_trainer.checkpoint_store import CheckpointStore

        dest = s3.parse_s3_uri(args.dest)
        spec = _spec("s3://unused/x.csv")
        with s3.Storage(s3.StorageConfig.from_spec(spec)) as storage:
            store = CheckpointStore(storage, dest, Path(args.dir), run_id="bench")
            t0 = time.perf_counter()
            result = store.sync(1)
            out |= {"seconds": time.perf_counter() - t0, "uploaded": result.uploaded}
    # VmHWM of this process: ru_maxrss would include the parent's RSS at fork time (Linux keeps it
    # across exec).
    with open("/proc/self/status") as status:
        out["peak_rss_kib"] = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
