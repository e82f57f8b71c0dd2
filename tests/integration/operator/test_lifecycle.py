"""A run on the real control plane: preflight on the CPU node, training on a GPU node, failures."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.unit.operator.test_status_kstatus import kstatus

from .conftest import base_spec

pytestmark = pytest.mark.cluster


def kconds(env, name):
    return {c["type"]: c["status"] for c in env.status(name)["conditions"]}


def test_valid_cr_preflight_then_training_succeeds(env):
    env.apply("en", base_spec())
    status = env.wait_phase("en", "Succeeded", timeout=90)
    assert env.job_names() == ["en-g1-preflight", "en-g1-train"]
    pre_pod = env.pods("en-g1-preflight")[0]
    train_pod = env.pods("en-g1-train")[0]
    assert pre_pod.spec.node_name == "cpu-node-0"
    assert "nvidia.com/gpu" not in (pre_pod.spec.containers[0].resources.limits or {})
    assert train_pod.spec.node_name in ("gpu-node-0", "gpu-node-1")
    assert train_pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    job = env.batch.read_namespaced_job("en-g1-train", env.ns)
    assert job.metadata.owner_references[0].kind == "DeepSpeechTraining"
    assert job.spec.pod_failure_policy.rules[1].on_exit_codes.values == [65]
    conds = kconds(env, "en")
    assert (conds["Ready"], conds["Reconciling"], conds["Stalled"], conds["Succeeded"]) == (
        "True",
        "False",
        "False",
        "True",
    )
    assert status["observedGeneration"] == env.get("en")["metadata"]["generation"]
    model = f"s3://models/en-finetune/en/g1-{env.get('en')['metadata']['uid'][:8]}/"
    assert status["model"]["uri"] == model
    assert kstatus(env.get("en")) == "Current"
    assert {"RunStarted", "JobCreated", "Succeeded", "ModelExported"} <= set(env.events("en"))
    printed = env.kubectl("get", "dst", "en", "-n", env.ns).stdout
    assert "Succeeded" in printed and model in printed
    assert env.get("en")["metadata"].get("finalizers") in (None, [])


def test_invalid_data_exit_fails_stalled_without_retry(env):
    env.hold_pods()
    env.apply("bad", base_spec(preflight=False))
    pod = env.wait("training pod running", lambda: env.running_pod("bad-g1-train"))
    env.finish_pod(
        pod.metadata.name,
        65,
        {"kind": "train", "runId": "g1", "ok": False, "error": "train.csv line 3: empty transcript"},
    )
    status = env.wait_phase("bad", "Failed")
    assert status["run"]["lastExitCode"] == 65
    assert kconds(env, "bad")["Stalled"] == "True" and kconds(env, "bad")["Reconciling"] == "False"
    assert "empty transcript" in env.condition("bad", "Stalled")["message"]
    assert env.condition("bad", "Stalled")["reason"] == "PodFailurePolicy"
    assert kstatus(env.get("bad")) == "Failed"
    assert len(env.pods("bad-g1-train")) == 1  # never retried
    assert env.job_names() == ["bad-g1-train"]
    assert "PodFailurePolicy" in env.events("bad")


def test_counted_failure_retries_and_reports_oomkilled(env):
    env.hold_pods()
    env.apply("oom", base_spec(preflight=False))
    pod = env.wait("training pod running", lambda: env.running_pod("oom-g1-train"))
    env.finish_pod(pod.metadata.name, 137, reason="OOMKilled")
    status = env.wait(
        "retry reported",
        lambda: (s := env.status("oom")).get("run", {}).get("lastFailureReason") == "OOMKilled" and s,
    )
    assert status["run"]["lastExitCode"] == 137
    second = env.wait("replacement pod", lambda: env.running_pod("oom-g1-train"))
    assert second.metadata.name != pod.metadata.name
    env.wait(
        "attempt 2 running",
        lambda: env.status("oom").get("phase") == "Running" and env.status("oom")["run"]["attempt"] == 2,
    )


def test_eviction_is_not_counted(env):
    env.hold_pods()
    env.apply("ev", base_spec(preflight=False))
    pod = env.wait("training pod running", lambda: env.running_pod("ev-g1-train"))
    env.core.create_namespaced_pod_eviction(
        pod.metadata.name,
        env.ns,
        client.V1Eviction(metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=env.ns)),
    )
    replacement = env.wait(
        "replacement pod running",
        lambda: (p := env.running_pod("ev-g1-train")) and p.metadata.name != pod.metadata.name and p,
    )
    job = env.batch.read_namespaced_job("ev-g1-train", env.ns)
    assert not job.status.failed
    env.wait("running again", lambda: env.status("ev").get("phase") == "Running")
    assert env.status("ev")["run"]["attempt"] == 1
    env.finish_pod(replacement.metadata.name, 0)
    env.wait_phase("ev", "Succeeded")
    assert env.condition("ev", "Stalled")["status"] == "False"


def test_unschedulable_reason_is_visible(env):
    env.apply("big", base_spec(preflight=False, resources={"gpus": 16}))
    status = env.wait(
        "unschedulable reason",
        lambda: (
            "Unschedulable" in ((s := env.status("big")).get("run", {}).get("lastFailureReason") or "") and s
        ),
    )
    assert "nvidia.com/gpu" in status["run"]["lastFailureReason"]
    assert status["phase"] == "Queued"
    assert env.condition("big", "Ready")["reason"] == "Unschedulable"
    assert env.condition("big", "Reconciling")["status"] == "True"
    assert kstatus(env.get("big")) == "InProgress"
