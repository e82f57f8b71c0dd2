"""A queued training Job is created suspended: without Kueue (or its webhook) admitting it, no pod starts
and the CR reads Queued; the operator never unsuspends it itself."""

from __future__ import annotations

import pytest

from .conftest import base_spec

pytestmark = pytest.mark.cluster


def test_queued_job_is_created_suspended_and_left_to_kueue(env):
    env.apply("q", base_spec(preflight=False, queueName="gpu-queue"))
    ready = env.wait("Queued", lambda: (c := env.condition("q", "Ready")).get("reason") == "Queued" and c)
    job = env.batch.read_namespaced_job("q-g1-train", env.ns)
    assert job.spec.suspend is True
    assert job.metadata.labels["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert env.status("q")["phase"] == "Queued" and "suspended" in ready["message"].lower()
    assert env.pods("q-g1-train") == []
    # Kueue admits by unsuspending: the operator follows, it does not fight it.
    env.batch.patch_namespaced_job("q-g1-train", env.ns, {"spec": {"suspend": False}})
    env.wait_phase("q", "Succeeded")
