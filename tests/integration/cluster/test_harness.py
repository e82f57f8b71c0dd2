"""The local cluster behaves like a cluster: these tests fail if any component is missing or broken."""

from __future__ import annotations

import json
import secrets

import botocore.exceptions
import pytest

from tests.cluster.config import CPU_NODES, GPU_NODES, SIM_EXIT_CODE, SIM_HOLD, SIM_MESSAGE
from tests.cluster.controlplane import s3_client
from tests.cluster.processes import wait_until

pytestmark = pytest.mark.cluster

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def job(name: str, gpus: int, backoff_limit: int = 0) -> dict:
    container = {"name": "main", "image": "busybox:1.36", "command": ["true"]}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "spec": {"restartPolicy": "Never", "tolerations": [GPU_TOLERATION], "containers": [container]}
            },
        },
    }


def get_json(cluster, *args: str) -> dict:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def test_apiserver_ready(cluster):
    assert cluster.kubectl("get", "--raw", "/readyz").stdout == "ok"


def test_nodes_ready_with_gpu_capacity(cluster):
    nodes = {n["metadata"]["name"]: n for n in get_json(cluster, "nodes")["items"]}
    assert set(GPU_NODES) | set(CPU_NODES) <= set(nodes)
    for name in (*GPU_NODES, *CPU_NODES):
        ready = {c["type"]: c["status"] for c in nodes[name]["status"]["conditions"]}["Ready"]
        assert ready == "True", name
    for name in GPU_NODES:
        assert nodes[name]["status"]["allocatable"]["nvidia.com/gpu"] == "8"
        assert nodes[name]["metadata"]["labels"]["nvidia.com/gpu.product"]
    assert "nvidia.com/gpu" not in nodes[CPU_NODES[0]]["status"]["allocatable"]


def test_gpu_job_scheduled_on_gpu_node_and_completes(cluster, namespace):
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(job("gpu-one", gpus=1)))
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Complete", "job/gpu-one", "--timeout=60s")
    pods = get_json(cluster, "-n", namespace, "pods", "-l", "job-name=gpu-one")["items"]
    assert [p["spec"]["nodeName"] in GPU_NODES for p in pods] == [True]
    assert pods[0]["status"]["phase"] == "Succeeded"


def test_too_many_gpus_stays_pending_with_failed_scheduling(cluster, namespace):
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(job("gpu-nine", gpus=9)))

    def failed_scheduling() -> list[str]:
        events = get_json(cluster, "-n", namespace, "events", "--field-selector", "reason=FailedScheduling")
        return [e["message"] for e in events["items"]]

    messages = wait_until(failed_scheduling, 60, "a FailedScheduling event")
    assert any("nvidia.com/gpu" in m for m in messages), messages
    pods = get_json(cluster, "-n", namespace, "pods", "-l", "job-name=gpu-nine")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Pending"]


def test_pod_fails_with_chosen_exit_code_and_message(cluster, namespace):
    cluster.kubectl("annotate", "namespace", namespace, f"{SIM_HOLD}=true")
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(job("fails", gpus=0)))
    pod = wait_until(lambda: _running_pod(cluster, namespace, "fails"), 60, "the pod to run")
    cluster.kubectl("-n", namespace, "annotate", "pod", pod, f"{SIM_EXIT_CODE}=65", f"{SIM_MESSAGE}=bad data")
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Failed", "job/fails", "--timeout=60s")
    state = get_json(cluster, "-n", namespace, "pod", pod)["status"]["containerStatuses"][0]["state"]
    assert state["terminated"]["exitCode"] == 65
    assert state["terminated"]["message"] == "bad data"


def test_eviction_marks_disruption_target_and_job_replaces_pod(cluster, namespace):
    cluster.kubectl("annotate", "namespace", namespace, f"{SIM_HOLD}=true")
    spec = job("evicted", gpus=1)
    spec["spec"]["podFailurePolicy"] = {
        "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
    }
    spec["spec"]["podReplacementPolicy"] = "Failed"
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(spec))
    first = wait_until(lambda: _running_pod(cluster, namespace, "evicted"), 60, "the pod to run")
    from kubernetes import client

    core = client.CoreV1Api(cluster.api_client())
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=first, namespace=namespace))
    core.create_namespaced_pod_eviction(first, namespace, eviction)
    second = wait_until(
        lambda: (p := _running_pod(cluster, namespace, "evicted")) and p != first and p,
        60,
        "a replacement pod",
    )
    assert second != first
    status = get_json(cluster, "-n", namespace, "job", "evicted")["status"]
    assert status.get("failed", 0) == 0  # the Ignore rule matched DisruptionTarget: not counted


def test_deleting_owner_garbage_collects_job_and_pods(cluster, namespace):
    cluster.kubectl("annotate", "namespace", namespace, f"{SIM_HOLD}=true")
    owner = cluster.kubectl("-n", namespace, "create", "configmap", "owner", "-o", "json").stdout
    uid = json.loads(owner)["metadata"]["uid"]
    spec = job("owned", gpus=0)
    spec["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "controller": True}
    ]
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(spec))
    wait_until(lambda: _running_pod(cluster, namespace, "owned"), 60, "the owned pod to run")
    cluster.kubectl("-n", namespace, "delete", "configmap", "owner")

    def gone() -> bool:
        jobs = get_json(cluster, "-n", namespace, "jobs")["items"]
        pods = get_json(cluster, "-n", namespace, "pods")["items"]
        return not jobs and not pods

    wait_until(gone, 60, "the garbage collector to remove the Job and its pods")


def test_s3_stores_and_returns_objects(s3_env):
    s3, bucket = s3_client(s3_env), f"harness-{secrets.token_hex(4)}"  # the cluster may outlive a session
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello")
    assert s3.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"hello"


def test_s3_rejects_wrong_secret_key(s3_env):
    with pytest.raises(botocore.exceptions.ClientError) as error:
        s3_client(s3_env, secret="not-the-secret").list_buckets()
    assert error.value.response["Error"]["Code"] in {
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AccessDenied",
    }


def _running_pod(cluster, namespace: str, job_name: str) -> str | None:
    pods = get_json(cluster, "-n", namespace, "pods", "-l", f"job-name={job_name}")["items"]
    running = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"]
    return running[0] if running else None
