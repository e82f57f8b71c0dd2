"""The chart-installed operator and the trainer it starts, both as real processes with only the RBAC they
are given: the operator with the chart's ServiceAccount (projected token of its Deployment's pod), the
trainer with the per-CR ServiceAccount and Role the operator creates. A full run must succeed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cluster.config import STATE_DIR
from tests.cluster.processes import free_port, wait_until
from tests.e2e.test_training_flow import s3_keys, spec

pytestmark = pytest.mark.cluster


def operator_log(namespace: str) -> str:
    logs = sorted((STATE_DIR / "pods").glob(f"{namespace}_*/logs/operator.log"))
    return "\n".join(p.read_text() for p in logs)


def test_chart_operator_and_trainer_run_with_their_own_rbac(
    cluster: Any, process_namespace: str, crd: None, helm, corpus: str, s3_env: dict[str, str]
):
    namespace = process_namespace
    release = helm(
        {
            "crds": {"enabled": False, "keep": True},
            "watchNamespaces": [namespace],
            "metrics": {"port": free_port()},
            "livenessProbe": {"port": free_port()},
        }
    )
    assert not release.objects("ClusterRoleBinding"), "a namespaced install grants nothing cluster-wide"
    body = {
        "apiVersion": "training.deepspeech.dev/v1alpha1",
        "kind": "DeepSpeechTraining",
        "metadata": {"name": "charted", "namespace": namespace},
        "spec": spec(corpus, s3_env, namespace, name="charted"),
    }
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(body))

    def status() -> dict[str, Any]:
        return (
            json.loads(cluster.kubectl("-n", namespace, "get", "dst", "charted", "-o", "json").stdout).get(
                "status"
            )
            or {}
        )

    try:
        final = wait_until(
            lambda: (s := status()).get("phase") in ("Succeeded", "Failed") and s, 240, "the run to end"
        )
    except TimeoutError as exc:
        pytest.fail(f"{exc}; status {status()}\n--- operator log ---\n{operator_log(namespace)[-4000:]}")
    assert final["phase"] == "Succeeded", final
    assert final["progress"]["epoch"] == 4, "live progress came from the trainer's own status patches"
    assert s3_keys(s3_env, final["model"]["uri"])
    trainer_pod = json.loads(
        cluster.kubectl(
            "-n", namespace, "get", "pods", "-l", "training.deepspeech.dev/stage=train", "-o", "json"
        ).stdout
    )["items"][0]
    assert trainer_pod["spec"]["serviceAccountName"] == "charted-trainer"
    log = operator_log(namespace)
    assert "Activity 'startup' succeeded" in log, "the operator ran inside the chart's pod"
    assert "forbidden" not in log.lower(), "the operator needed a permission the chart lacks"
