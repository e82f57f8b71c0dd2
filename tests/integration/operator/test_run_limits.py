"""runPolicy limits are the run's: the Job of a resume continues its retries and deadline."""

from __future__ import annotations

import pytest

from .conftest import base_spec

pytestmark = pytest.mark.cluster


def test_a_resumed_job_continues_the_runs_retries_and_deadline(env):
    env.hold_pods()
    env.apply("lim", base_spec(preflight=False, runPolicy={"backoffLimit": 2, "activeDeadlineSeconds": 3600}))
    first = env.wait("first pod running", lambda: env.running_pod("lim-g1-train"))
    env.finish_pod(first.metadata.name, 75)  # a transient failure: counted against backoffLimit
    env.wait(
        "replacement pod running",
        lambda: (p := env.running_pod("lim-g1-train")) and p.metadata.name != first.metadata.name,
    )
    env.patch_spec("lim", {"suspend": True})
    env.wait_phase("lim", "Suspended", timeout=90)
    run = env.status("lim")["run"]
    env.patch_spec("lim", {"suspend": False})
    env.wait("resumed pod", lambda: env.running_pod("lim-g1-train-s1"))
    job = env.batch.read_namespaced_job("lim-g1-train-s1", env.ns)
    print(
        f"resume Job: backoffLimit {job.spec.backoff_limit}, activeDeadlineSeconds "
        f"{job.spec.active_deadline_seconds} (run used {run.get('activeSeconds')} s, 1 failure)"
    )
    assert job.spec.backoff_limit == 1
    assert run["failures"] == 1 and job.spec.active_deadline_seconds == 3600 - run["activeSeconds"]
    assert env.status("lim")["run"]["attempt"] == 2
