"""Render the Helm chart with the real Helm engine (helm-python-sdk wraps Helm's Go library) and the kustomize
manifests with kubectl's built-in kustomize; shared by tests/unit/chart and tests/integration/chart."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "deepspeech-operator"
MANIFESTS = REPO / "manifests"
CRD_MANIFEST = MANIFESTS / "crd" / "training.deepspeech.dev_deepspeechtrainings.yaml"
KUBECTL = REPO / ".venv" / "bin" / "kubectl"
K8S_VALIDATE_VERSION = "1.36"
# Kinds that kubernetes-validate has no schema for (their CRDs are not built in).
NOT_BUILT_IN = {"ServiceMonitor", "DeepSpeechTraining"}


@functools.cache
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART)


def render_files(
    values: dict[str, Any] | None = None, name: str = "dso", namespace: str = "dso-system"
) -> dict[str, str]:
    """Template path (relative to the chart) -> rendered text, as `helm template` would produce."""
    rendered = chart().render(values=values, name=name, namespace=namespace, is_install=True)
    prefix = chart().name + "/"
    return {path.removeprefix(prefix): text for path, text in rendered.items()}


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(
    values: dict[str, Any] | None = None, name: str = "dso", namespace: str = "dso-system"
) -> list[dict[str, Any]]:
    """Every object the chart renders (NOTES.txt excluded)."""
    objects: list[dict[str, Any]] = []
    for path, text in sorted(render_files(values, name, namespace).items()):
        if path.endswith(".yaml"):
            objects.extend(documents(text))
    return objects


def kustomize(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(path)], capture_output=True, text=True, check=True
    )
    return documents(result.stdout)


def by_kind(objects: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def validate_offline(objects: Iterable[dict[str, Any]]) -> int:
    """Strict OpenAPI validation of every built-in object (unknown fields fail); returns how many."""
    count = 0
    for obj in objects:
        if obj["kind"] in NOT_BUILT_IN:
            continue
        kubernetes_validate.validate(obj, K8S_VALIDATE_VERSION, strict=True)
        count += 1
    return count


def container_env(deployment: dict[str, Any]) -> dict[str, str]:
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    names = [e["name"] for e in env]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    return {e["name"]: e["value"] for e in env}
