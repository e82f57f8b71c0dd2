"""Server-side dry-run against the local control plane (v1.36) of everything we ship: the chart rendered with
default and non-default values, the kustomize base and overlays, and every DeepSpeechTraining example."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.unit.chart.chartlib import MANIFESTS, documents, kustomize, render
from tests.unit.chart.test_render import NON_DEFAULT

from .conftest import dry_run_apply

pytestmark = pytest.mark.cluster

EXAMPLES = sorted((MANIFESTS / "examples").glob("*.yaml"))


def _in(namespace: str, values: dict[str, Any] | None) -> dict[str, Any]:
    """The values with every watched namespace replaced by the test's (dry-run needs existing namespaces)."""
    values = copy.deepcopy(values or {})
    if values.get("watchNamespaces"):
        values["watchNamespaces"] = [namespace]
    return values


@pytest.mark.parametrize(
    "values",
    [None, {"watchNamespaces": ["x"]}, NON_DEFAULT],
    ids=["default", "namespaced", "non-default"],
)
def test_chart_server_side_dry_run(cluster, crd, namespace, values):
    objects = render(_in(namespace, values), name="dry", namespace=namespace)
    # The ServiceMonitor's CRD (prometheus-operator) is not installed here; it is checked offline.
    applied = [o for o in objects if o["kind"] != "ServiceMonitor"]
    result = dry_run_apply(cluster, applied)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(applied)


def test_dry_run_rejects_what_the_apiserver_rejects(cluster, crd, namespace):
    """The dry run is a real check: a Deployment the apiserver refuses makes it fail."""
    objects = render(name="dry", namespace=namespace)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    deployment["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 1}  # forbidden with Recreate
    result = dry_run_apply(cluster, [deployment])
    assert result.returncode != 0 and "rollingUpdate" in result.stderr


def _retarget(objects: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """Kustomize output moved into the test's namespace (dry-run cannot create the namespaces it names)."""
    out = []
    for obj in copy.deepcopy(objects):
        if obj["kind"] == "Namespace":
            continue
        if "namespace" in obj["metadata"]:
            obj["metadata"]["namespace"] = namespace
        for subject in obj.get("subjects", []):
            subject["namespace"] = namespace
        out.append(obj)
    return out


@pytest.mark.parametrize("path", ["base", "overlays/namespaced", "overlays/dev"])
def test_kustomize_server_side_dry_run(cluster, crd, namespace, path):
    objects = kustomize(MANIFESTS / path)
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    result = dry_run_apply(cluster, [*namespaces, *_retarget(objects, namespace)])
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_server_side_dry_run(cluster, crd, namespace, example):
    (training,) = documents(example.read_text())
    assert training["kind"] == "DeepSpeechTraining" and "namespace" not in training["metadata"]
    result = cluster.kubectl(
        "apply", "--dry-run=server", "--server-side", "-n", namespace, "-f", str(example), check=False
    )
    assert result.returncode == 0, result.stderr
    assert "serverside-applied (server dry run)" in result.stdout


def test_examples_cover_the_documented_cases():
    names = {p.stem for p in EXAMPLES}
    assert names == {
        "demo",
        "finetune-0.9.3",
        "from-scratch",
        "kueue",
        "suspend",
        "tflite-export",
        "tutorial-0.6.0",
    }
    specs = {p.stem: documents(p.read_text())[0]["spec"] for p in EXAMPLES}
    tutorial = specs["tutorial-0.6.0"]
    assert tutorial["deepspeech"]["version"] == "0.6.0"
    assert tutorial["training"] == {"nHidden": 2048, "epochs": 3, "learningRate": 0.0001}
    assert specs["finetune-0.9.3"]["initFrom"]["checkpoint"].endswith("deepspeech-0.9.3-checkpoint.tar.gz")
    assert "initFrom" not in specs["from-scratch"]
    assert specs["tflite-export"]["output"]["tflite"] is True
    assert specs["kueue"]["queueName"]
    assert specs["suspend"]["suspend"] is True
    # make demo trains a real tiny model (Coqui STT by default), no dry run.
    assert "dryRun" not in specs["demo"]
    assert specs["demo"]["deepspeech"]["engine"] == "coqui-stt"
    assert all(
        uri.startswith("s3://demo/")
        for uri in specs["demo"]["data"]["train"] + [specs["demo"]["output"]["uri"]]
    )
