"""Operator scale: N CRs created at once → time until every run has a Job, peak RSS, API requests per run,
and an idle window after everything settled that shows the operator makes no requests when nothing changes.

The namespace holds its pods Running (`sim.deepspeech.dev/hold`), so nothing churns after the Jobs exist.
The CPU node takes 110 pods (its `pods` capacity), so most preflight pods stay Pending: the scheduler's
Unschedulable condition is one more pod update per run, as on a full cluster.

Request counting: writes from the apiserver's audit log (Metadata level, writes only), attributed to the
operator by user agent (kopf's own client; the kubernetes client, except pod writes which only the node
agent makes); reads on DeepSpeechTrainings (only the operator reads them) from the apiserver's
`apiserver_request_total`.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import (
    GROUP,
    PLURAL,
    VERSION,
    BenchCluster,
    Record,
    audit_events,
    audit_time,
    is_operator_write,
    log,
    request_totals,
)
from bench.k8s_support import (
    HOLD,
    JobWatcher,
    OperatorProcess,
    RssSampler,
    delete_namespace,
    make_namespace,
    training,
)

TIME_TARGET_S, RSS_TARGET_MIB = 60.0, 200.0
CREATE_THREADS = 16


def _operator_writes(cluster: BenchCluster, ns: str, offset: int, since: float, until: float) -> Counter[str]:
    counts: Counter[str] = Counter()
    for event in audit_events(cluster.audit_log, offset):
        if not is_operator_write(event, ns):
            continue
        when = audit_time(event)
        if since <= when < until:
            ref = event["objectRef"]
            sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
            counts[f"{event['verb']} {ref.get('resource')}{sub}"] += 1
    return counts


def _settle(cluster: BenchCluster, ns: str, offset: int, quiet_s: float, limit_s: float) -> float:
    """Wait until the operator made no write for `quiet_s`; returns the wall time of its last write."""
    deadline = time.monotonic() + limit_s
    last = time.time()
    while time.monotonic() < deadline:
        writes = [audit_time(e) for e in audit_events(cluster.audit_log, offset) if is_operator_write(e, ns)]
        last = max(writes) if writes else last
        if time.time() - last >= quiet_s:
            return last
        time.sleep(1.0)
    return last


def _reads(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> dict[str, float]:
    out = {}
    for (verb, resource), value in after.items():
        delta = value - before.get((verb, resource), 0.0)
        if delta and resource in (PLURAL, "jobs", "pods") and verb in ("GET", "LIST", "WATCH"):
            out[f"{verb} {resource}"] = delta
    return out


def _polls_of_crs(reads: dict[str, float]) -> float:
    """GETs and LISTs of DeepSpeechTrainings; WATCH counts are stream ends, not requests for data."""
    return sum(v for k, v in reads.items() if k.endswith(PLURAL) and not k.startswith("WATCH"))


def run(cluster: BenchCluster, work: Any, quick: bool) -> list[Record]:
    from kubernetes import client

    n = 100 if quick else 1000
    idle_s = 15.0 if quick else 60.0
    ns = make_namespace(cluster, "bench-scale", {HOLD: "true"})
    custom = client.CustomObjectsApi(cluster.api_client())
    offset = cluster.audit_log.stat().st_size
    op = OperatorProcess.deepspeech(cluster, ns, work / "operator-scale.log")
    op.start()
    try:
        baseline_rss = op.memory().get("VmRSS", 0)
        with RssSampler(op.pid) as rss, JobWatcher(cluster, ns) as watcher:
            bodies = [training(f"s-{i:04d}", ns) for i in range(n)]
            log(f"scale: creating {n} CRs with {CREATE_THREADS} threads in {ns}")
            metrics_before = request_totals(cluster.metrics())
            t0 = time.time()
            with ThreadPoolExecutor(CREATE_THREADS) as pool:
                list(
                    pool.map(
                        lambda b: custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, b),
                        bodies,
                    )
                )
            t_applied = time.time()
            t_all = watcher.wait_count("-g1-preflight", n, timeout=600)
            log(f"scale: all {n} preflight Jobs after {t_all - t0:.1f}s (creates took {t_applied - t0:.1f}s)")
            last_write = _settle(cluster, ns, offset, quiet_s=5.0 if quick else 10.0, limit_s=300)
            metrics_settled = request_totals(cluster.metrics())
            t_settled = time.time()
            log(
                f"scale: operator settled {last_write - t0:.1f}s after the first create; idle window {idle_s:.0f}s"
            )
            time.sleep(idle_s)
            t_idle_end = time.time()
            metrics_idle = request_totals(cluster.metrics())
            peak_kib = rss.hwm_kib()
            samples = rss.samples
    finally:
        op.stop()
        delete_namespace(cluster, ns)

    busy_writes = _operator_writes(cluster, ns, offset, t0 - 1, t_settled)
    idle_writes = _operator_writes(cluster, ns, offset, t_settled, t_idle_end)
    busy_reads = _reads(metrics_before, metrics_settled)
    idle_reads = _reads(metrics_settled, metrics_idle)
    total_busy = sum(busy_writes.values())
    cr_reads = _polls_of_crs(busy_reads)
    per_run = (total_busy + cr_reads) / n
    log(
        "scale: API requests per run: "
        + ", ".join(f"{kind} {count / n:.2f}" for kind, count in busy_writes.most_common())
        + f", CR reads {cr_reads / n:.2f}"
    )
    elapsed = t_all - t0
    peak_mib = peak_kib / 1024
    # Polling would be GETs/LISTs or writes; a WATCH counted here is a stream the server ended after
    # --watch-timeout-seconds and the operator reopened: the price of noticing a dead connection
    # within that bound (docs/operator.md), reported beside the figure rather than hidden in it.
    idle_ops = sum(idle_writes.values()) + _polls_of_crs(idle_reads)
    idle_watch_reopens = idle_reads.get(f"WATCH {PLURAL}", 0.0)
    common = {
        "n": n,
        "create_seconds": round(t_applied - t0, 2),
        "settled_after_s": round(last_write - t0, 1),
    }
    return [
        Record(
            name="operator.scale.time_to_all_jobs",
            value=round(elapsed, 2),
            unit="s",
            target=f"<= {TIME_TARGET_S:.0f} s for {n} CRs",
            met=elapsed <= TIME_TARGET_S,
            details=common,
        ),
        Record(
            name="operator.scale.peak_rss",
            value=round(peak_mib, 1),
            unit="MiB",
            target=f"<= {RSS_TARGET_MIB:.0f} MiB",
            met=peak_mib <= RSS_TARGET_MIB,
            details=common
            | {
                "rss_at_start_mib": round(baseline_rss / 1024, 1),
                "rss_samples_kib": samples[:: max(1, len(samples) // 60)],
            },
        ),
        Record(
            name="operator.scale.api_requests_per_run",
            value=round(per_run, 2),
            unit="req/run",
            target="information (constant per run)",
            details=common
            | {
                "operator_writes_by_kind": dict(busy_writes.most_common()),
                "reads_all_clients_by_kind": busy_reads,
                "note": "value = operator writes (audit log) + GET/LIST on deepspeechtrainings (metrics), per run,"
                " from the first create until the operator stayed quiet; WATCH counts (stream ends) are not in it",
            },
        ),
        Record(
            name="operator.scale.idle_requests_per_min",
            value=round(idle_ops * 60 / idle_s, 2),
            unit="req/min",
            target="0 (no polling)",
            met=idle_ops == 0,
            details=common
            | {
                "idle_window_s": idle_s,
                "operator_writes": dict(idle_writes),
                "reads_all_clients": idle_reads,
                "watch_reopens_of_deepspeechtrainings": idle_watch_reopens,
                "why_this_window": "the operator has no kopf timers or daemons and its resync reads its own"
                " cache, so any periodic request would show up within a minute; its watches are reopened"
                " every --watch-timeout-seconds (30 s by default: a dead connection is noticed within 40 s)",
            },
        ),
        Record(
            name="operator.scale.idle_watch_reopens_per_min",
            value=round(idle_watch_reopens * 60 / idle_s, 2),
            unit="req/min",
            target="information: 60 / --watch-timeout-seconds per watched resource (the dead-watch bound)",
            details=common | {"idle_window_s": idle_s, "reads_all_clients": idle_reads},
        ),
    ]
