"""No polling: once runs are in a steady state the operator sends no API writes at all.

Writes are counted from the control plane's audit log (Metadata level, writes only; tests/cluster), filtered
to the test's namespace and the operator's clients: kopf's own (status, annotations, Events) and the
kubernetes client (pokes, Jobs, RBAC). The node agent shares that client's user agent but writes only pods.
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import pytest

from tests.cluster.config import STATE_DIR

from .conftest import base_spec

pytestmark = pytest.mark.cluster

AUDIT_LOG = STATE_DIR / "logs" / "audit.log"
# How long "nothing happens" is watched. A poke -> reconcile -> status cycle takes well under a second, a
# reconcile that keeps failing is retried every 5 s (handlers.RETRY_DELAY), and the scheduler retries the
# unschedulable pod on its own backoff (1-10 s): a loop through any of these writes within this window.
QUIET_WINDOW_S = 20.0
SETTLE_QUIET_S = 5.0  # "settled" = no operator write for this long (polled, with a deadline)


@pytest.fixture
def operator_args() -> list[str]:
    # The level-triggered resync ticks many times within the window, and must find nothing to do.
    return ["--resync-seconds", "1"]


def _operator_writes(offset: int, namespace: str) -> list[dict[str, Any]]:
    out = []
    with AUDIT_LOG.open("rb") as f:
        if AUDIT_LOG.stat().st_size < offset:
            offset = 0  # rotated (audit-log-maxsize): the new file has only newer entries
        f.seek(offset)
        for line in f:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line still being written
            ref = event.get("objectRef") or {}
            agent = event.get("userAgent", "")
            if ref.get("namespace") != namespace or event.get("verb") in ("get", "list", "watch"):
                continue
            if agent.startswith("kopf/") or (
                agent.startswith("OpenAPI-Generator/") and ref.get("resource") != "pods"
            ):
                out.append(event)
    return out


def _when(event: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp()


def _describe(events: list[dict[str, Any]]) -> list[str]:
    return [
        f"{e['verb']} {e['objectRef'].get('resource')}"
        + (f"/{e['objectRef']['subresource']}" if e["objectRef"].get("subresource") else "")
        + f" {e['objectRef'].get('name')} ({e.get('userAgent', '').split('/')[0]})"
        for e in events
    ]


def test_steady_state_sends_no_writes(env):
    # Decided here, not at collection: the session's cluster (and its audit log) starts after collection.
    if not AUDIT_LOG.exists():
        pytest.skip("an external cluster: no audit log of this harness to count writes")
    offset = AUDIT_LOG.stat().st_size
    env.hold_pods()
    # Three steady states: a training pod held Running; one that can never be scheduled (16 GPUs, the
    # nodes have 8), so the scheduler keeps retrying it; and a preflight held Running.
    env.apply("run", base_spec(preflight=False))
    env.apply("big", base_spec(preflight=False, resources={**base_spec()["resources"], "gpus": 16}))
    env.apply("pre", base_spec())
    env.wait_phase("run", "Running")
    env.wait_phase("pre", "Validating")
    env.wait(
        "big unschedulable",
        lambda: env.condition("big", "Ready").get("reason") == "Unschedulable",
    )
    env.wait("pre's preflight pod running", lambda: env.running_pod("pre-g1-preflight"))

    # Let the tail of the start-up settle: pokes for pods that became ready, kopf's bookkeeping.
    def settled() -> bool:
        writes = _operator_writes(offset, env.ns)
        return bool(writes) and time.time() - max(_when(e) for e in writes) >= SETTLE_QUIET_S

    env.wait("operator settled", settled, timeout=60)
    assert env.condition("run", "Ready").get("reason") == "Running"
    start = AUDIT_LOG.stat().st_size
    window_end = time.monotonic() + QUIET_WINDOW_S
    while time.monotonic() < window_end:  # bounded observation: "nothing happens" has no event to wait on
        writes = _operator_writes(start, env.ns)
        assert not writes, f"operator wrote in a steady state: {_describe(writes)}"
        time.sleep(1.0)
    assert not _operator_writes(start, env.ns)
    # The steady state is what it was.
    assert env.status("run")["phase"] == "Running"
    assert env.condition("big", "Ready").get("reason") == "Unschedulable"
    assert env.status("pre")["phase"] == "Validating"
