"""Runs over time: spec change, unchanged re-apply, suspend/resume."""

from __future__ import annotations

import pytest

from tests.unit.operator.test_status_kstatus import kstatus

from .conftest import base_spec

pytestmark = pytest.mark.cluster


def test_spec_change_starts_new_run_and_records_history(env):
    env.hold_pods()
    env.apply("en", base_spec(preflight=False))
    pod = env.wait("g1 running", lambda: env.running_pod("en-g1-train"))
    generation = env.get("en")["metadata"]["generation"]
    # Unchanged re-apply: nothing moves.
    env.apply("en", base_spec(preflight=False))
    assert env.get("en")["metadata"]["generation"] == generation
    env.patch_spec("en", {"training": {"epochs": 5}})
    new_gen = env.get("en")["metadata"]["generation"]
    status = env.wait(
        "new run", lambda: (s := env.status("en")).get("run", {}).get("id") == f"g{new_gen}" and s
    )
    assert status["history"][-1]["id"] == "g1" and status["history"][-1]["phase"] == "Superseded"
    new_job = f"en-g{new_gen}-train"
    env.wait("old job removed, new job created", lambda: env.job_names() == [new_job], timeout=90)
    assert not [p for p in env.pods() if p.metadata.name == pod.metadata.name]
    new_pod = env.wait("new run running", lambda: env.running_pod(new_job))
    assert env.status("en")["progress"]["epochs"] == 5
    env.finish_pod(new_pod.metadata.name, 0)
    env.wait_phase("en", "Succeeded")
    assert env.job_names() == [new_job]
    uid = env.get("en")["metadata"]["uid"]
    assert env.status("en")["model"]["uri"] == f"s3://models/en-finetune/en/g{new_gen}-{uid[:8]}/"


def test_suspend_and_resume_keep_the_run(env):
    env.hold_pods()
    env.apply("sus", base_spec(preflight=False))
    env.wait("running", lambda: env.running_pod("sus-g1-train"))
    env.patch_spec("sus", {"suspend": True})
    env.wait_phase("sus", "Suspended", timeout=90)
    assert env.job_names() == [] and env.pods() == []
    assert env.condition("sus", "Ready")["status"] == "True"
    assert env.condition("sus", "Ready")["reason"] == "Suspended"
    assert kstatus(env.get("sus")) == "Current"
    env.patch_spec("sus", {"suspend": False})
    pod = env.wait("resumed pod", lambda: env.running_pod("sus-g1-train-s1"))
    status = env.status("sus")
    assert status["run"]["id"] == "g1" and status["run"]["resumes"] == 1
    assert "history" not in status
    env.finish_pod(pod.metadata.name, 0)
    env.wait_phase("sus", "Succeeded")
    assert env.job_names() == ["sus-g1-train-s1"]
    assert {"Suspending", "Suspended", "Resumed"} <= set(env.events("sus"))


def test_dry_run_stops_after_preflight(env):
    env.apply("dry", base_spec(dryRun=True))
    env.wait_phase("dry", "Succeeded")
    assert env.job_names() == ["dry-g1-preflight"]
    assert env.condition("dry", "Ready")["reason"] == "DryRunComplete"
