"""The product on a real kubelet: the project's own Coqui STT trainer image, imported into the real node's
containerd, runs a tiny real training as containers. kubectl apply → operator (a local process) →
preflight pod and training pod, both on node real-kubelet-0 (containerd + runc + the CNI bridge) → the
model in S3, the result read from the pod's termination message that the kubelet wrote. The second test
runs the operator image as a container on the node too (hostNetwork, the admin kubeconfig from a Secret).

The preflight pod ignores spec placement by design, so for this test the real node's taint is removed and
every other node is cordoned (both restored afterwards). SeaweedFS listens on 127.0.0.1, which a pod's
network namespace cannot reach: a TCP proxy on the bridge's gateway address forwards to it, and that is
spec.storage.endpoint. The trainer's live status patches go to the kubernetes Service IP, which nothing
routes here (no kube-proxy): they fail, which is non-fatal by contract.

Skipped where it cannot run: see realkubelet.unavailable(), plus the trainer image in podman's store
(`make images`) and espeak-ng for the corpus. docs/real-kubelet.md records its timings."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.cluster import realkubelet
from tests.cluster.config import STATE_DIR
from tests.cluster.processes import free_port
from tests.cluster.tcpproxy import BlackholeProxy
from tests.e2e.test_training_flow import s3_keys, spec
from tests.integration.operator.conftest import Env, OperatorProcess, running_operator

IMAGE = "localhost/deepspeech-operator/trainer:coqui-stt-1.4.0"
# Another tag of the operator image (e.g. one built from a branch) for the operator-image test.
OPERATOR_IMAGE = os.environ.get(
    "DSO_REAL_KUBELET_OPERATOR_IMAGE", "localhost/deepspeech-operator/operator:0.1.0"
)


def _why_not() -> str | None:
    if reason := realkubelet.unavailable():
        return reason
    if os.environ.get("DSO_TEST_CLUSTER") == "external":
        return "DSO_TEST_CLUSTER=external: the real kubelet joins only the local cluster"
    if realkubelet.podman_image_id(IMAGE) is None:
        return f"{IMAGE} not in podman's image store (make images)"
    if not shutil.which("espeak-ng"):
        return "espeak-ng not installed (the corpus is spoken by it)"
    return None


WHY_NOT = _why_not()
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.real_training,
    pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or ""),
]


@pytest.fixture(scope="module")
def real_node(cluster) -> Iterator[dict[str, float]]:
    """The real node, started, with the trainer image imported; yields timings (seconds)."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    realkubelet.up(STATE_DIR)
    timings["node_up"] = time.monotonic() - started
    try:
        started = time.monotonic()
        realkubelet.import_podman_image(IMAGE, STATE_DIR)
        timings["image_import"] = time.monotonic() - started
        yield timings
    finally:
        realkubelet.down(STATE_DIR)


@pytest.fixture
def only_real_node(cluster, real_node) -> Iterator[None]:
    """Every new pod goes to the real node: its taint off, all other schedulable nodes cordoned."""
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    cordoned = [
        n["metadata"]["name"]
        for n in nodes
        if n["metadata"]["name"] != realkubelet.REAL_NODE and not n["spec"].get("unschedulable")
    ]
    taint = f"{realkubelet.REAL_TAINT['key']}={realkubelet.REAL_TAINT['value']}:{realkubelet.REAL_TAINT['effect']}"
    for name in cordoned:
        cluster.kubectl("cordon", name)
    cluster.kubectl("taint", "nodes", realkubelet.REAL_NODE, f"{taint}-")
    try:
        yield
    finally:
        for name in cordoned:
            cluster.kubectl("uncordon", name, check=False)
        cluster.kubectl("taint", "nodes", realkubelet.REAL_NODE, taint, "--overwrite", check=False)


@pytest.fixture
def s3_for_pods(s3_env: dict[str, str]) -> Iterator[str]:
    """An S3 endpoint pods on the real node reach: a proxy on the bridge's gateway address."""
    host, _, port = s3_env["AWS_ENDPOINT_URL"].removeprefix("http://").rstrip("/").rpartition(":")
    with BlackholeProxy(host, int(port), lifetime=3600, listen_host=realkubelet.GATEWAY) as proxy:
        yield f"http://{realkubelet.GATEWAY}:{proxy.port}"


def _operator_args(namespace: str) -> list[str]:
    return [
        "--allowed-image-prefixes", IMAGE.rsplit(":", 1)[0] + ":",
        "--image-pull-policy", "Never",  # imported, never pulled
        "--preflight-cpu", "500m", "--preflight-memory", "1Gi",
    ]  # fmt: skip


@pytest.fixture
def trainer_namespace(cluster, namespace, s3_env, crd, only_real_node) -> str:
    cluster.kubectl(
        "-n", namespace, "create", "secret", "generic", "s3-credentials",
        f"--from-literal=AWS_ACCESS_KEY_ID={s3_env['AWS_ACCESS_KEY_ID']}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={s3_env['AWS_SECRET_ACCESS_KEY']}",
    )  # fmt: skip
    return namespace


@pytest.fixture
def kubelet_e2e(cluster, trainer_namespace, tmp_path) -> Iterator[Env]:
    """The operator as a local process."""
    args = tuple(_operator_args(trainer_namespace))
    op = OperatorProcess(cluster.kubeconfig, trainer_namespace, tmp_path / "operator.log", extra_args=args)
    with running_operator(op, cluster, trainer_namespace) as started:
        yield started


def operator_pod(namespace: str) -> dict[str, Any]:
    """The operator image as a pod of the real node. hostNetwork: the apiserver listens on 127.0.0.1 and
    there is no kube-proxy for the Service IP; so no in-cluster config either: no token, the admin
    kubeconfig from a Secret (k8s.load_config and kopf fall back to KUBECONFIG)."""
    args = [
        "--namespaces", namespace, *_operator_args(namespace),
        "--metrics-port", str(free_port()), "--liveness-port", str(free_port()),
    ]  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator"},
        "spec": {
            "restartPolicy": "Never",
            "hostNetwork": True,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "containers": [
                {
                    "name": "operator",
                    "image": OPERATOR_IMAGE,
                    "imagePullPolicy": "Never",
                    "args": args,
                    "env": [{"name": "KUBECONFIG", "value": "/kube/config"}],
                    "volumeMounts": [{"name": "kubeconfig", "mountPath": "/kube", "readOnly": True}],
                }
            ],
            "volumes": [{"name": "kubeconfig", "secret": {"secretName": "operator-kubeconfig"}}],
        },
    }


@pytest.fixture
def operator_image_e2e(
    cluster, trainer_namespace, tmp_path, real_node
) -> Iterator[tuple[Env, Callable[[], bool]]]:
    """The operator image as a container on the real node (the same flags as the local process), and a
    probe that fails the test at once when that container ends."""
    if realkubelet.podman_image_id(OPERATOR_IMAGE) is None:
        pytest.skip(f"{OPERATOR_IMAGE} not in podman's image store (make images)")
    started = time.monotonic()
    realkubelet.import_podman_image(OPERATOR_IMAGE, STATE_DIR)
    real_node["operator_image_import"] = time.monotonic() - started
    ns = trainer_namespace
    cluster.kubectl(
        "-n", ns, "create", "secret", "generic", "operator-kubeconfig", f"--from-file=config={cluster.kubeconfig}"
    )  # fmt: skip
    cluster.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(operator_pod(ns)))
    op = OperatorProcess(cluster.kubeconfig, ns, tmp_path / "operator.log")  # never started: for Env
    env = Env(cluster, ns, op)

    def running() -> bool:
        phase = env.core.read_namespaced_pod("operator", ns).status.phase
        if phase in ("Succeeded", "Failed"):
            logs = cluster.kubectl("-n", ns, "logs", "operator", check=False).stdout
            pytest.fail(f"the operator pod ended ({phase}):\n{logs[-3000:]}")
        return phase == "Running"

    env.wait("the operator pod Running", running, timeout=120)
    try:
        yield env, running
    finally:
        logs = cluster.kubectl("-n", ns, "logs", "operator", check=False)
        op.log.write_text(logs.stdout + logs.stderr)
        print(f"operator pod log: {op.log}")
        cluster.kubectl("-n", ns, "delete", "pod", "operator", "--wait=true", "--timeout=60s", check=False)


def train_on_real_node(
    e2e: Env,
    corpus: str,
    s3_env: dict[str, str],
    endpoint: str,
    timings: dict[str, float],
    operator_alive: Callable[[], bool] = lambda: True,
) -> None:
    """Applies a tiny Coqui STT run and checks its pods, status and model."""
    started = time.monotonic()
    epochs = 3
    value: dict[str, Any] = spec(
        corpus,
        s3_env,
        e2e.ns,
        name="kubelet",
        deepspeech={"engine": "coqui-stt", "version": "1.4.0", "image": IMAGE},
        training={"epochs": epochs, "learningRate": 0.001, "nHidden": 32, "cudnn": False},
        resources={"gpus": 0, "cpu": "1", "memory": "4Gi", "sharedMemory": "64Mi"},
    )
    value["data"]["alphabet"] = f"{corpus}/alphabet.txt"
    value["storage"]["endpoint"] = endpoint
    e2e.apply("kubelet", value)
    status = e2e.wait(
        "kubelet finished",
        lambda: (
            operator_alive() and (s := e2e.status("kubelet")).get("phase") in ("Succeeded", "Failed") and s
        ),
        timeout=1200,
    )
    pods = e2e.pods()
    report = {
        p.metadata.name: (p.spec.node_name, p.status.phase, p.status.container_statuses[0].image_id)
        for p in pods
    }
    print(f"timings: {timings}, test {time.monotonic() - started:.0f}s; pods: {report}")
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)

    stages = {p.metadata.labels.get("training.deepspeech.dev/stage") for p in pods}
    assert {"preflight", "train"} <= stages, report
    for pod in pods:  # containers of the real node, from the imported image, finished cleanly
        assert pod.spec.node_name == realkubelet.REAL_NODE, report
        assert pod.status.phase == "Succeeded", report
        (container,) = pod.status.container_statuses
        assert container.image == IMAGE and container.image_id.startswith("sha256:"), report
        terminated = container.state.terminated
        assert terminated.exit_code == 0 and terminated.message, report  # the kubelet wrote it

    assert status["preflight"]["ok"] is True
    assert status["progress"]["epoch"] == epochs
    assert 0.0 <= status["metrics"]["wer"] <= 1.0 and 0.0 <= status["metrics"]["cer"] <= 1.0
    model = status["model"]
    assert model["uri"].startswith(f"s3://e2e/models/{e2e.ns}/kubelet/")
    assert any(k.endswith("output_graph.tflite") for k in s3_keys(s3_env, model["uri"]))


@pytest.mark.timeout(1500)
def test_coqui_trainer_image_trains_on_the_real_kubelet(
    kubelet_e2e: Env, corpus: str, s3_env: dict[str, str], s3_for_pods: str, real_node: dict[str, float]
):
    train_on_real_node(kubelet_e2e, corpus, s3_env, s3_for_pods, real_node)


@pytest.mark.timeout(1500)
def test_operator_image_on_the_real_kubelet_runs_the_same_training(
    operator_image_e2e: Env,
    corpus: str,
    s3_env: dict[str, str],
    s3_for_pods: str,
    real_node: dict[str, float],
):
    e2e, alive = operator_image_e2e
    train_on_real_node(e2e, corpus, s3_env, s3_for_pods, real_node, operator_alive=alive)
