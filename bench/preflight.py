"""Preflight validation throughput: a R-row CSV, audio headers read from S3, rows/s; and preflight's
peak RSS at 10^4, 10^6 and 10^7 rows (it must stay flat in the number of rows).

Audio: the R rows reference the staging benchmark's N real WAV clips (row i → clip i mod N, each with
its own transcript), so every row has a real RIFF header behind it while the setup stays a few thousand
uploads. The trainer reads each distinct object's header once (ranged GET of 4 KiB), so this measures
CSV parsing, path resolution, listing, N ranged GETs and validation of R rows. Measured inside the
worker: `preflight.check_data(spec, mode="headers")` with an empty work dir (no local cache). The
validator flags rows that share an object as `duplicate_row`; the details also give the header-read rate
and an estimate for a CSV whose every row has its own object (R header reads instead of N).

Peer: the server's ceiling for the same reads — bench/ceiling.py listing the clips and reading the first
4 KiB of each (the same N ranged GETs, no CSV, no validation), alternated with the trainer's runs. Its
rows/s is R / its time: what preflight would reach if everything but the reads were free.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from deepspeech_trainer.audio import HEADER_BYTES

from bench import s3data
from bench.common import BenchCluster, Record, median, ratio_rate, timed, timed_cpu
from bench.profiling import profile

TARGET_ROWS_S = 20_000.0
CEILING_TARGET = 0.8
# Memory: the CPU-only preflight pod gets 2 GiB by default; the figure must not grow with the rows.
MEMORY_ROWS = (10_000, 1_000_000, 10_000_000)
QUICK_MEMORY_ROWS = (1_000, 10_000, 100_000)
# Allowed growth over the smallest input: what preflight keeps is bounded (the duplicate index, at most
# 32 MiB, and one 20 000-row chunk), so any number of rows stays within this of the smallest.
FLAT_MIB = 100


def run(cluster: BenchCluster, work: Path, quick: bool) -> list[Record]:
    files = 200 if quick else 5000
    rows = 10_000 if quick else 100_000
    env = cluster.s3_env()
    sizes = s3data.ensure_corpus(env, files)
    csv = s3data.ensure_preflight_csv(env, sizes, rows)
    worker_env = s3data.peer_env(env, work / "aws-home")
    rates, walls, results, ceiling_s, ceiling_cpu = [], [], [], [], []
    clips_prefix = f"s3://{s3data.BUCKET}/{s3data.CLIPS}/"
    for i in range(2):
        _, used, out = timed_cpu(s3data.ceiling(clips_prefix, first_bytes=HEADER_BYTES), worker_env)
        got = json.loads(out.strip().splitlines()[-1])
        if got["files"] != files:
            raise RuntimeError(f"ceiling client read {got['files']} headers, expected {files}: {got}")
        ceiling_s.append(got["seconds"])
        ceiling_cpu.append(used)
        target = work / f"preflight-{i}"
        shutil.rmtree(target, ignore_errors=True)
        wall, out = timed(s3data.trainer_worker("preflight", "--csv", csv, "--work", str(target)), worker_env)
        result = json.loads(out.strip().splitlines()[-1])
        if result["rows"] != rows:
            raise RuntimeError(f"preflight saw {result['rows']} rows, expected {rows}: {result}")
        rates.append(rows / result["seconds"])
        walls.append(wall)
        results.append(result)
        shutil.rmtree(target, ignore_errors=True)
    rate = median(rates)
    ceiling_rate = rows / median(ceiling_s)
    last = results[-1]
    header_rate = last["header_reads"] / last["stage_seconds"]
    validate_s = last["seconds"] - last["stage_seconds"]
    distinct_estimate = rows / (rows / header_rate + validate_s)
    details = {
        "rows": rows,
        "distinct_audio_objects": files,
        "rows_per_s_runs": [round(r) for r in rates],
        "in_process_s": [round(r["seconds"], 3) for r in results],
        "wall_s": [round(w, 3) for w in walls],
        "report_ok": results[-1]["ok"],
        "problem_counts": results[-1]["problem_counts"],
        "header_reads": results[-1]["header_reads"],
        "stage_s_listing_and_header_reads": round(last["stage_seconds"], 3),
        "validate_and_rest_s": round(validate_s, 3),
        "header_reads_per_s": round(header_rate),
        "ceiling_header_reads_s": [round(x, 3) for x in ceiling_s],
        "ceiling_cpu_s": [round(x, 2) for x in ceiling_cpu],
        "ceiling_header_reads_per_s": round(files / median(ceiling_s)),
        "estimated_rows_per_s_if_every_row_had_its_own_object": round(distinct_estimate),
        "note": "rows beyond the first per object are reported as duplicate_row problems (capped list),"
        " so validation also exercises the problem path",
    }
    met = rate >= CEILING_TARGET * ceiling_rate
    if not met:
        target = work / "preflight-profiled"
        details["profile"] = profile(
            "preflight", s3data.trainer_worker("preflight", "--csv", csv, "--work", str(target)), worker_env
        )
        shutil.rmtree(target, ignore_errors=True)
    details["rows_per_s_target_absolute"] = TARGET_ROWS_S
    details["absolute_target_met"] = rate >= TARGET_ROWS_S
    return [
        *_memory(env, worker_env, work, quick),
        _rate_record(rate, ceiling_rate, met, rows, files, details),
    ]


def _rate_record(rate: float, ceiling_rate: float, met: bool, rows: int, files: int, details: dict) -> Record:
    return Record(
        name="trainer.preflight.rows_per_s",
        value=round(rate),
        unit="rows/s",
        peer="server ceiling of ranged GETs (bench/ceiling.py --range 4096)",
        peer_value=round(ceiling_rate),
        ratio=ratio_rate(rate, ceiling_rate),
        target=f">= {CEILING_TARGET:.1f}x the ceiling ({rows} rows over {files} real WAV objects;"
        f" {TARGET_ROWS_S:.0f} rows/s {'met' if rate >= TARGET_ROWS_S else 'not met'})",
        met=met,
        details=details,
    )


def _memory(env: dict, worker_env: dict, work: Path, quick: bool) -> list[Record]:
    """Peak RSS (VmHWM of the worker process) of check_data(mode="headers") on CSVs whose every
    row names its own missing clip: every row is a problem and a distinct duplicate-check entry."""
    sizes = QUICK_MEMORY_ROWS if quick else MEMORY_ROWS
    measured: list[tuple[int, float, float]] = []
    for rows in sizes:
        csv = s3data.ensure_missing_audio_csv(env, rows, work / "memory-csv")
        target = work / f"preflight-memory-{rows}"
        shutil.rmtree(target, ignore_errors=True)
        wall, out = timed(s3data.trainer_worker("preflight", "--csv", csv, "--work", str(target)), worker_env)
        result = json.loads(out.strip().splitlines()[-1])
        if result["rows"] != rows or result["problem_counts"].get("file_missing") != rows:
            raise RuntimeError(f"preflight saw {result['rows']} rows, expected {rows} missing: {result}")
        measured.append((rows, result["peak_rss_kib"] / 1024, wall))
        shutil.rmtree(target, ignore_errors=True)
    smallest = measured[0][1]
    records = []
    for rows, peak, wall in measured:
        records.append(
            Record(
                name=f"trainer.preflight.peak_rss.{rows:.0e}".replace("+0", "").replace("+", ""),
                value=round(peak),
                unit="MiB",
                target=f"flat: <= {FLAT_MIB} MiB above the {measured[0][0]}-row figure ({rows} rows, all missing audio)",
                met=peak - smallest <= FLAT_MIB,
                details={"rows": rows, "wall_s": round(wall, 1), "rows_per_s": round(rows / wall)},
            )
        )
    return records
