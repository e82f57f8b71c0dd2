"""The kustomize base and overlays: they build, validate offline, and agree with the chart where they overlap
(the CRD, the operator's RBAC, the user roles, the Deployment's pod). No image names a registry host."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .chartlib import (
    CHART,
    CRD_MANIFEST,
    MANIFESTS,
    by_kind,
    container_env,
    kustomize,
    one,
    render,
    validate_offline,
)

BASE = MANIFESTS / "base"
OVERLAYS = sorted(p.parent for p in (MANIFESTS / "overlays").glob("*/kustomization.yaml"))


def named(objects, kind, name):
    found = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def chart_operator_rules():
    return named(render(), "ClusterRole", "dso-deepspeech-operator")["rules"]


@pytest.mark.parametrize("path", [BASE, *OVERLAYS], ids=lambda p: p.name)
def test_builds_and_validates_offline(path):
    objects = kustomize(path)
    assert validate_offline(objects) == len(objects)
    assert {o["kind"] for o in objects} >= {"CustomResourceDefinition", "Deployment", "ServiceAccount"}


def test_overlays_exist():
    assert [p.name for p in OVERLAYS] == ["dev", "namespaced"]


def test_crd_is_the_generated_manifest():
    crd = one(kustomize(BASE), "CustomResourceDefinition")
    expected = yaml.safe_load(CRD_MANIFEST.read_text())
    expected["metadata"]["labels"]["app.kubernetes.io/part-of"] = "deepspeech-operator"
    assert crd == expected


def test_base_rbac_matches_the_chart():
    objects = kustomize(BASE)
    assert named(objects, "ClusterRole", "deepspeech-operator")["rules"] == chart_operator_rules()
    binding = named(objects, "ClusterRoleBinding", "deepspeech-operator")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "deepspeech-operator", "namespace": "deepspeech-operator"}
    ]
    chart_objects = render()
    for suffix in ("editor", "viewer"):
        ours = named(objects, "ClusterRole", f"deepspeech-operator-{suffix}")
        theirs = named(chart_objects, "ClusterRole", f"dso-deepspeech-operator-{suffix}")
        assert ours["rules"] == theirs["rules"]
        aggregation = {k: v for k, v in theirs["metadata"]["labels"].items() if "aggregate" in k}
        assert (
            aggregation
            and {k: v for k, v in ours["metadata"]["labels"].items() if "aggregate" in k} == aggregation
        )


def test_namespaced_overlay_matches_the_chart():
    objects = kustomize(MANIFESTS / "overlays" / "namespaced")
    assert [o["metadata"]["name"] for o in by_kind(objects, "ClusterRole")] == [
        "deepspeech-operator-editor",
        "deepspeech-operator-viewer",
    ]
    assert by_kind(objects, "ClusterRoleBinding") == []
    role, binding = one(objects, "Role"), one(objects, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "speech"
    assert role["rules"] == chart_operator_rules()
    assert binding["subjects"][0]["namespace"] == one(objects, "Deployment")["metadata"]["namespace"]
    assert container_env(one(objects, "Deployment"))["DST_OPERATOR_NAMESPACES"] == "speech"
    chart_role = one(render({"watchNamespaces": ["speech"]}), "Role")
    assert chart_role["rules"] == role["rules"]


def _strip_helm(pod_template: dict[str, Any]) -> dict[str, Any]:
    """The pod template without the release-specific parts (labels, service account name)."""
    spec = dict(pod_template["spec"])
    spec.pop("serviceAccountName")
    return spec


def test_base_deployment_is_the_charts_default():
    ours = one(kustomize(BASE), "Deployment")
    theirs = one(render(), "Deployment")
    assert ours["spec"]["replicas"] == 1 and ours["spec"]["strategy"] == theirs["spec"]["strategy"]
    assert _strip_helm(ours["spec"]["template"]) == _strip_helm(theirs["spec"]["template"])
    assert ours["spec"]["template"]["spec"]["serviceAccountName"] == "deepspeech-operator"


def test_dev_overlay():
    deployment = one(kustomize(MANIFESTS / "overlays" / "dev"), "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = container_env(deployment)
    assert env["DST_OPERATOR_VERBOSE"] == "true"
    assert env["DST_OPERATOR_ALLOWED_IMAGE_PREFIXES"].split(",") == [
        "deepspeech-operator/trainer:",
        "deepspeech-operator/trainer-dev:",
    ]
    assert container["image"] == "deepspeech-operator/operator:dev"
    assert container["imagePullPolicy"] == "Always"


def _images(node: Any, key: str = "") -> Iterator[str]:
    """Every image reference in a YAML tree: `image` fields and the chart's repository/prefix values."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _images(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _images(v, key)
    elif isinstance(node, str) and (
        key in ("image", "repository", "allowedImagePrefixes", "newName")
        or re.fullmatch(r"\d+\.\d+\.\d+", key)
    ):
        yield node  # trainer.images is keyed by DeepSpeech version
    elif isinstance(node, str) and key == "value" and re.match(r"^[a-z0-9-]+/[a-z0-9-]+:", node):
        yield from node.split(",")


def _registry_host(image: str) -> bool:
    first = image.split("/", 1)[0]
    return "/" in image and ("." in first or ":" in first or first == "localhost")


def test_no_image_names_a_registry_host():
    files = [f for f in [*CHART.rglob("*.yaml"), *MANIFESTS.rglob("*.yaml")] if "templates" not in f.parts]
    images = {img for f in files for doc in yaml.safe_load_all(f.read_text()) if doc for img in _images(doc)}
    images |= {img for path in [BASE, *OVERLAYS] for img in _images(kustomize(path))}
    images |= set(_images(render()))
    assert "deepspeech-operator/operator:0.1.0" in images and "deepspeech-operator/trainer" in images
    assert [i for i in images if _registry_host(i)] == []
    assert _registry_host("registry.example:5000/x/y:1")  # the check itself can fail
