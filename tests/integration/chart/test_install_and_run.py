"""`helm install` into the local control plane, then the operator runs a training end to end with nothing but
the chart's ServiceAccount identity: proof that the chart's RBAC is enough, and (auth can-i) that it grants no
more than it should.

Two ways to hold that identity:
- cluster-wide install: the operator runs here as a process with a kubeconfig built from a TokenRequest token
  for the chart's ServiceAccount (`kubectl create token`) and the chart's Deployment env;
- namespaced install: the chart's own Deployment runs on the process node (tests/cluster/procrunner.py), so
  the operator starts from the rendered pod spec (command, env, ports, /tmp volume) with the pod's projected
  ServiceAccount token, as it would in a real cluster.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import helm_python
import pytest

from tests.cluster.config import PROCESS_TAINT, RUNTIME_LABEL, STATE_DIR
from tests.cluster.processes import free_port, wait_until
from tests.integration.operator.conftest import GROUP, PLURAL, VERSION, OperatorProcess, base_spec
from tests.unit.chart.chartlib import container_env

from .conftest import can_i, token_kubeconfig

pytestmark = pytest.mark.cluster

NO_CRDS = {"crds": {"enabled": False, "keep": True}}
RUN_TIMEOUT = 120


def apply_training(cluster: Any, namespace: str, name: str) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DeepSpeechTraining",
        "metadata": {"name": name, "namespace": namespace},
        "spec": base_spec(),
    }
    cluster.kubectl("apply", "--server-side", "--field-manager=test", "-f", "-", input=json.dumps(body))


def status(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", f"{PLURAL}.{GROUP}", name, "-n", namespace, "-o", "json").stdout
    return json.loads(out).get("status") or {}


def wait_succeeded(cluster: Any, namespace: str, name: str, log: Any) -> dict[str, Any]:
    try:
        return wait_until(
            lambda: (s := status(cluster, namespace, name)).get("phase") == "Succeeded" and s,
            RUN_TIMEOUT,
            f"{namespace}/{name} Succeeded",
        )
    except TimeoutError as exc:
        pytest.fail(f"{exc}; status: {status(cluster, namespace, name)}\n--- operator log ---\n{log()}")


def assert_full_run(cluster: Any, namespace: str, name: str, log: Any) -> None:
    apply_training(cluster, namespace, name)
    final = wait_succeeded(cluster, namespace, name, log)
    jobs = cluster.kubectl("get", "jobs", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(jobs) == [f"job.batch/{name}-g1-preflight", f"job.batch/{name}-g1-train"]
    uid = json.loads(cluster.kubectl("get", "dst", name, "-n", namespace, "-o", "json").stdout)["metadata"][
        "uid"
    ]
    assert final["model"]["uri"] == f"s3://models/en-finetune/{name}/g1-{uid[:8]}/"
    # The per-CR trainer objects the operator created with its own rights (incl. the escalation check).
    for kind in ("serviceaccount", "role", "rolebinding"):
        cluster.kubectl("get", kind, f"{name}-trainer", "-n", namespace)
    text = log()
    # A refused request logs "Forbidden" (reason) / "forbidden" (message); a bare "403" also matches timestamps.
    assert "forbidden" not in text.lower(), "the operator hit a permission it lacks"


def assert_least_privilege(cluster: Any, sa: str, release_ns: str, watched: str) -> None:
    def yes(verb: str, resource: str, *where: str) -> bool:
        return can_i(cluster, sa, release_ns, verb, resource, *where)

    for verb in ("get", "list", "watch"):
        assert not yes(verb, "secrets", "-n", watched)
        assert not yes(verb, "secrets", "-n", release_ns)
    assert not yes("list", "secrets", "--all-namespaces")
    assert not yes("create", "pods", "-n", watched)
    assert not yes("patch", "jobs", "-n", watched)  # Jobs are write-once
    assert not yes("delete", f"{PLURAL}.{GROUP}", "-n", watched)  # never deletes a training
    assert not yes("update", f"{PLURAL}.{GROUP}", "-n", watched)
    assert not yes("escalate", "roles", "-n", watched)
    assert not yes("bind", "roles", "-n", watched)
    assert not yes("list", "namespaces")
    assert not yes("get", "customresourcedefinitions")
    assert yes("watch", f"{PLURAL}.{GROUP}", "-n", watched)
    assert yes("patch", f"{PLURAL}.{GROUP}", "--subresource=status", "-n", watched)
    assert yes("create", "jobs", "-n", watched)
    assert yes("create", "rolebindings", "-n", watched)
    assert yes("patch", "rolebindings", "-n", watched)  # the trainer's binding follows serviceAccountName


def test_values_typo_fails_the_install(cluster, namespace, helm):
    with pytest.raises(helm_python.HelmError, match="additional properties 'watchNamespace' not allowed"):
        helm({**NO_CRDS, "watchNamespace": ["speech"]})
    assert cluster.kubectl(
        "get", "deployments,serviceaccounts", "-n", namespace, "-o", "name"
    ).stdout.split() == ["serviceaccount/default"]


def test_cluster_wide_install_with_a_token_identity(cluster, crd, namespace, helm, tmp_path):
    # The Deployment's own pod must not run on a simulated node here (it would "complete" in a second and the
    # ReplicaSet would replace it in a loop); this test runs the operator outside with the pod's identity.
    release = helm({**NO_CRDS, "nodeSelector": {"deepspeech.dev/no-such-node": "true"}})
    assert {o["kind"] for o in release.manifest} >= {"ClusterRole", "ClusterRoleBinding", "Deployment"}
    sa = release.service_account
    assert can_i(cluster, sa, namespace, "list", f"{PLURAL}.{GROUP}", "--all-namespaces")
    assert_least_privilege(cluster, sa, namespace, namespace)

    env = container_env(release.objects("Deployment")[0])
    # Watch only this test's namespace (other tests' trainings live in theirs); the rights stay cluster-wide.
    env |= {
        "DST_OPERATOR_NAMESPACES": namespace,
        "DST_OPERATOR_METRICS_PORT": str(free_port()),
        "DST_OPERATOR_LIVENESS_PORT": str(free_port()),
    }
    kubeconfig = token_kubeconfig(cluster, namespace, sa, tmp_path)
    who = cluster.kubectl(
        "--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"
    )
    assert who.stdout == f"system:serviceaccount:{namespace}:{sa}"
    operator = OperatorProcess(kubeconfig, namespace, tmp_path / "operator.log", config_env=env)
    operator.start()
    try:
        healthz = f"http://127.0.0.1:{env['DST_OPERATOR_LIVENESS_PORT']}/healthz"
        wait_until(lambda: urllib.request.urlopen(healthz, timeout=2).status == 200, 60, "liveness endpoint")
        assert_full_run(cluster, namespace, "wide", operator.text)
        assert operator.proc.poll() is None
    finally:
        operator.stop()


def _pod_log(namespace: str, pod: str) -> str:
    logs = sorted((STATE_DIR / "pods").glob(f"{namespace}_{pod}_*/logs/*.log"))
    return "\n".join(p.read_text()[-6000:] for p in logs)


def test_namespaced_install_runs_the_charts_deployment(cluster, crd, namespace, helm):
    values = {
        **NO_CRDS,
        "watchNamespaces": [namespace],
        "metrics": {"port": free_port()},
        "livenessProbe": {"port": free_port()},
        # Onto the node whose pods really run as local processes (the .venv stands in for the image).
        "nodeSelector": {RUNTIME_LABEL: "process"},
        "tolerations": [
            {"key": PROCESS_TAINT["key"], "operator": "Exists"},
            {"key": "nvidia.com/gpu", "operator": "Exists"},
        ],
    }
    started = time.monotonic()
    release = helm(values)
    assert not release.objects("ClusterRoleBinding")
    sa = release.service_account
    assert not can_i(cluster, sa, namespace, "list", f"{PLURAL}.{GROUP}", "--all-namespaces")
    assert not can_i(cluster, sa, namespace, "create", "jobs", "-n", "default")
    assert_least_privilege(cluster, sa, namespace, namespace)

    def running_pod() -> str:
        out = cluster.kubectl(
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            f"app.kubernetes.io/instance={release.name}",
            "-o",
            "jsonpath={range .items[?(@.status.phase=='Running')]}{.metadata.name}{end}",
        ).stdout
        return out

    pod = wait_until(running_pod, 60, "the operator pod running")
    print(
        f"helm install {release.seconds:.2f}s, operator pod running after {time.monotonic() - started:.1f}s"
    )
    assert_full_run(cluster, namespace, "inside", lambda: _pod_log(namespace, pod))
    phase = cluster.kubectl("get", "pod", pod, "-n", namespace, "-o", "jsonpath={.status.phase}").stdout
    assert phase == "Running"  # the operator is still up after the run


def test_without_the_finalizers_rule_the_operator_cannot_own_jobs(cluster, crd, namespace, helm, tmp_path):
    """The chart's `deepspeechtrainings/finalizers` rule is needed: without it the apiserver (with
    OwnerReferencesPermissionEnforcement) refuses a Job whose ownerReference blocks the owner's deletion."""
    release = helm({**NO_CRDS, "nodeSelector": {"deepspeech.dev/no-such-node": "true"}})
    binding = next(
        b
        for b in release.objects("ClusterRoleBinding")
        if any(s["name"] == release.service_account for s in b["subjects"])
    )
    live = json.loads(cluster.kubectl("get", "clusterrole", binding["roleRef"]["name"], "-o", "json").stdout)
    kept = [r for r in live["rules"] if "deepspeechtrainings/finalizers" not in r.get("resources", [])]
    assert len(kept) < len(live["rules"]), "the chart grants the finalizers rule"
    live["rules"] = kept
    cluster.kubectl("replace", "-f", "-", input=json.dumps(live))
    env = container_env(release.objects("Deployment")[0]) | {
        "DST_OPERATOR_NAMESPACES": namespace,
        "DST_OPERATOR_METRICS_PORT": str(free_port()),
        "DST_OPERATOR_LIVENESS_PORT": str(free_port()),
    }
    kubeconfig = token_kubeconfig(cluster, namespace, release.service_account, tmp_path)
    operator = OperatorProcess(kubeconfig, namespace, tmp_path / "op.log", config_env=env)
    operator.start()
    try:
        apply_training(cluster, namespace, "orphan")
        wait_until(lambda: "forbidden" in operator.text().lower(), 60, "the apiserver to refuse the Job")
        assert "blockOwnerDeletion" in operator.text() or "finalizers" in operator.text()
        assert cluster.kubectl("get", "jobs", "-n", namespace, "-o", "name").stdout == ""
    finally:
        operator.stop()
