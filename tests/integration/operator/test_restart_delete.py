"""Operator restarts (SIGKILL at any moment) and CR deletion."""

from __future__ import annotations

import pytest

from .conftest import base_spec

pytestmark = pytest.mark.cluster


def test_operator_killed_and_restarted_creates_one_job_per_run(env):
    env.hold_pods()
    env.apply("rs", base_spec())
    pre = env.wait("preflight pod", lambda: env.running_pod("rs-g1-preflight"))
    for _ in range(3):  # killed and restarted several times while the preflight runs
        env.op.kill()
        env.op.start()
        env.wait("operator observed the CR again", lambda: env.status("rs").get("phase") == "Validating")
    env.op.kill()
    env.finish_pod(pre.metadata.name, 0)  # preflight finishes while the operator is down
    env.op.start()
    train = env.wait("train pod", lambda: env.running_pod("rs-g1-train"))
    env.op.kill()
    env.op.start()
    env.wait("running after restart", lambda: env.status("rs").get("phase") == "Running")
    env.finish_pod(train.metadata.name, 0)
    env.op.kill()
    env.op.start()
    env.wait_phase("rs", "Succeeded")
    assert env.job_names() == ["rs-g1-preflight", "rs-g1-train"]
    assert len(env.pods("rs-g1-train")) == 1


def test_deleting_the_cr_removes_jobs_and_pods_even_with_operator_down(env):
    env.hold_pods()
    env.apply("del", base_spec(preflight=False))
    env.wait("running", lambda: env.running_pod("del-g1-train"))
    assert env.get("del")["metadata"].get("finalizers") in (None, [])
    env.op.kill()
    env.kubectl("delete", "dst", "del", "-n", env.ns, "--wait=true", "--timeout=60s")
    env.wait(
        "jobs and pods garbage-collected", lambda: env.job_names() == [] and env.pods() == [], timeout=120
    )
    sa = env.core.list_namespaced_service_account(env.ns).items
    assert "del-trainer" not in [s.metadata.name for s in sa] or env.wait(
        "trainer account collected",
        lambda: (
            "del-trainer"
            not in [s.metadata.name for s in env.core.list_namespaced_service_account(env.ns).items]
        ),
    )
