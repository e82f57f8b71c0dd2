"""A real kubelet (k8s.io/kubernetes, the control plane's version) with containerd and runc joins the local
cluster, advertises nvidia.com/gpu as an extended resource, and runs a scheduled pod that asks for one
to completion. Skipped where it cannot run: no containerd/runc/CNI plugins, not root, or no kubelet built
(`python -m tests.cluster build-kubelet`; never built by the default `build`). See docs/real-kubelet.md."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tests.cluster import realkubelet
from tests.cluster.config import STATE_DIR
from tests.cluster.processes import wait_until

pytestmark = pytest.mark.cluster

_why_not = realkubelet.unavailable() or (
    "DSO_TEST_CLUSTER=external: the real kubelet joins only the local cluster"
    if os.environ.get("DSO_TEST_CLUSTER") == "external"
    else None
)


@pytest.fixture(scope="module")
def real_node(cluster) -> Iterator[str]:
    if _why_not:
        pytest.skip(_why_not)
    realkubelet.up(STATE_DIR)
    yield realkubelet.REAL_NODE
    realkubelet.down(STATE_DIR)


def gpu_pod(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "tolerations": [{**realkubelet.REAL_TAINT, "operator": "Equal"}],
            "containers": [
                {
                    "name": "main",
                    "image": realkubelet.IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["/hello", "on", "a", "GPU", "node"],
                    "env": [{"name": "HELLO", "value": "world"}],
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                }
            ],
        },
    }


@pytest.mark.skipif(bool(_why_not), reason=_why_not or "")
def test_real_kubelet_runs_a_gpu_pod_to_completion(cluster, namespace, real_node):
    node = json.loads(cluster.kubectl("get", "node", real_node, "-o", "json").stdout)
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "1"
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")

    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(gpu_pod("hello")))

    def finished() -> dict | None:
        pod = json.loads(cluster.kubectl("-n", namespace, "get", "pod", "hello", "-o", "json").stdout)
        return pod if pod["status"].get("phase") in ("Succeeded", "Failed") else None

    pod = wait_until(finished, 120, "the pod on the real kubelet to finish", interval=1)
    assert pod["spec"]["nodeName"] == real_node  # scheduled: the only node with a GPU and no taint it lacks
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0
    # Logs come from the kubelet's own endpoint, through the apiserver (TLS both ways, the cluster's CA).
    logs = cluster.kubectl("-n", namespace, "logs", "hello").stdout
    assert "hello from a real kubelet's container: on a GPU node (HELLO=world, pid 1)" in logs
    # Deleted while the kubelet runs, so it tears the sandbox down (CNI DEL, unmounts) itself.
    cluster.kubectl("-n", namespace, "delete", "pod", "hello", "--wait=true", "--timeout=60s")
