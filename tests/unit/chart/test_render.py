"""The chart rendered by the real Helm engine: objects, strict values schema, CRD bytes, RBAC, Deployment."""

from __future__ import annotations

import os
import re

import helm_python
import kubernetes_validate
import pytest
from deepspeech_operator import crdgen
from deepspeech_operator.children import Owner, trainer_rbac
from deepspeech_operator.config import parse

from .chartlib import (
    CHART,
    CRD_MANIFEST,
    REPO,
    by_kind,
    chart,
    container_env,
    one,
    render,
    render_files,
    validate_offline,
)

KEEP = "  annotations:\n    helm.sh/resource-policy: keep\n"

NON_DEFAULT = {
    "crds": {"enabled": True, "keep": False},
    "image": {"repository": "mirror/deepspeech-operator", "digest": "sha256:" + "a" * 64},
    "imagePullSecrets": [{"name": "regcred"}],
    "watchNamespaces": ["speech", "speech-dev"],
    "trainer": {
        "repository": "ml/deepspeech-trainer",
        "images": {"0.6.1": "ml/deepspeech-trainer-tf115:0.6.1"},
        "allowedImagePrefixes": ["ml/deepspeech-trainer:", "ml/deepspeech-trainer-tf115:"],
        "pullPolicy": "Always",
        "runAsUser": 2000,
        "train": {"cpu": "8", "memory": "32Gi", "sharedMemory": "4Gi", "graceSeconds": 600},
        "preflight": {"cpu": "500m", "memory": "1Gi"},
    },
    "historyLimit": 20,
    "apiServer": {"timeoutSeconds": 10, "watchTimeoutSeconds": 120},
    "verbose": True,
    "extraEnv": [{"name": "TZ", "value": "UTC"}],
    "serviceAccount": {"create": True, "name": "dst-operator", "annotations": {"team": "speech"}},
    "rbac": {"create": True, "userRoles": True, "aggregateToDefaultRoles": False},
    "livenessProbe": {"port": 9091, "stallSeconds": 600},
    "metrics": {
        "port": 9090,
        "service": {"enabled": True, "port": 9090},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    },
    "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    "priorityClassName": "system-cluster-critical",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
                        ]
                    }
                ]
            }
        }
    },
    "podAnnotations": {"example.com/owner": "speech"},
    "podLabels": {"team": "speech"},
}


def kinds(objects):
    return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)


def operator_rules(objects):
    """The rules of the role(s) bound to the operator's ServiceAccount (not the user-facing roles)."""
    return [
        o["rules"]
        for o in objects
        if o["kind"] in ("ClusterRole", "Role") and not o["metadata"]["name"].endswith(("-editor", "-viewer"))
    ]


def test_default_objects():
    objects = render()
    assert kinds(objects) == [
        "ClusterRole/dso-deepspeech-operator",
        "ClusterRole/dso-deepspeech-operator-editor",
        "ClusterRole/dso-deepspeech-operator-viewer",
        "ClusterRoleBinding/dso-deepspeech-operator",
        "CustomResourceDefinition/deepspeechtrainings.training.deepspeech.dev",
        "Deployment/dso-deepspeech-operator",
        "ServiceAccount/dso-deepspeech-operator",
    ]
    for obj in objects:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"):
            assert obj["metadata"]["namespace"] == "dso-system"
        if obj["kind"] != "CustomResourceDefinition":
            labels = obj["metadata"]["labels"]
            assert labels["app.kubernetes.io/instance"] == "dso"
            assert labels["app.kubernetes.io/managed-by"] == "Helm"
            assert labels["helm.sh/chart"] == "deepspeech-operator-0.1.0"


def test_chart_metadata():
    meta = chart().metadata
    assert meta["appVersion"] == "0.1.0"
    assert meta["kubeVersion"].startswith(">=1.31")


@pytest.mark.parametrize(
    "values",
    [None, NON_DEFAULT, {"crds": {"enabled": False, "keep": True}, "rbac": {"userRoles": False}}],
    ids=["default", "non-default", "minimal"],
)
def test_every_object_validates_offline(values):
    objects = render(values)
    assert validate_offline(objects) == len([o for o in objects if o["kind"] != "ServiceMonitor"])


def test_offline_validation_can_fail():
    deployment = one(render(), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_offline([deployment])


def test_helm_lint_strict_is_clean():
    report = helm_python.lint(CHART, strict=True, kube_version="v1.36.0")
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize(
    "values",
    [
        {"watchNamespace": ["speech"]},  # typo at the top level
        {"crds": {"enabld": True}},  # typo one level down
        {"trainer": {"images": {"0.9.4": "deepspeech-operator/trainer:x"}}},  # unknown DeepSpeech version
        {"trainer": {"train": {"memory": "16 GB"}}},  # not a quantity
        {"historyLimit": 50},  # the operator allows at most 20
        {"apiServer": {"timeoutSeconds": 0}},  # the operator needs at least 1
        {"apiServer": {"watchTimeout": 30}},  # typo
        {"livenessProbe": {"stallSeconds": -1}},
        {"metrics": {"serviceMonitor": {"enabled": "yes"}}},  # wrong type
        {"watchNamespaces": ["Speech"]},  # not a namespace name
        {"securityContext": {"readOnlyRootFilesystm": True}},
    ],
)
def test_values_typo_fails(values):
    with pytest.raises(helm_python.HelmValuesError):
        render(values)


def test_schema_is_strict_everywhere():
    """Every object schema that lists properties forbids others (free-form maps type their values)."""

    def walk(node, path):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    schema = chart().schema
    assert schema["additionalProperties"] is False
    walk(schema, "$")
    chart().validate_schema(chart().values)  # the defaults themselves are valid


def test_crd_template_is_the_manifest_byte_for_byte():
    manifest = CRD_MANIFEST.read_text()
    assert (CHART / crdgen.CHART_CRD_FILE).read_text() == manifest
    kept = render_files()["templates/crd.yaml"]
    assert kept.count(KEEP) == 1
    assert kept.replace("metadata:\n" + KEEP, "metadata:\n", 1) == manifest
    assert render_files({"crds": {"enabled": True, "keep": False}})["templates/crd.yaml"] == manifest
    crd = one(render(), "CustomResourceDefinition")
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert by_kind(render({"crds": {"enabled": False, "keep": True}}), "CustomResourceDefinition") == []


def test_crd_template_is_generated():
    assert crdgen.stale_files(REPO) == [], "run `make generate`"
    with pytest.raises(ValueError, match="annotations"):
        crdgen.chart_crd_template({"metadata": {"name": "x", "annotations": {"a": "b"}}})


def test_deployment_defaults():
    deployment = one(render(), "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    assert container["image"] == "deepspeech-operator/operator:0.1.0"
    assert container["command"] == ["deepspeech-operator"]
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = container_env(deployment)
    assert ports == {"metrics": int(env["DST_OPERATOR_METRICS_PORT"]), "healthz": 8081}
    assert env["DST_OPERATOR_LIVENESS_PORT"] == "8081"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert "readinessProbe" not in container
    assert "DST_OPERATOR_NAMESPACES" not in env  # cluster-wide


def test_deployment_env_is_what_the_operator_parses(monkeypatch):
    """The chart's env, read by the operator's own config parser, gives the values that went in."""
    env = container_env(one(render(NON_DEFAULT), "Deployment"))
    config = parse_env(env, monkeypatch)
    assert config.namespaces == ("speech", "speech-dev")
    assert config.image_repository == "ml/deepspeech-trainer"
    assert config.image_for("0.6.1") == "ml/deepspeech-trainer-tf115:0.6.1"
    assert config.image_for("0.9.3") == "ml/deepspeech-trainer:0.9.3"
    assert config.allowed_image_prefixes == ("ml/deepspeech-trainer:", "ml/deepspeech-trainer-tf115:")
    assert config.image_pull_policy == "Always"
    assert (config.metrics_port, config.liveness_port) == (9090, 9091)
    assert config.train_defaults.memory == "32Gi" and config.train_defaults.shared_memory == "4Gi"
    assert config.preflight_resources.cpu == "500m"
    assert (config.train_grace_seconds, config.run_as_user, config.history_limit) == (600, 2000, 20)
    assert (config.api_timeout_seconds, config.watch_timeout_seconds, config.liveness_stall_seconds) == (
        10,
        120,
        600,
    )
    assert config.verbose is True
    assert env["TZ"] == "UTC"
    defaults = parse_env(container_env(one(render(), "Deployment")), monkeypatch)
    assert defaults == parse_env({}, monkeypatch)  # the chart's defaults are the operator's defaults


def parse_env(env, monkeypatch):
    """The operator's config from exactly the DST_OPERATOR_* variables of `env` (none from this process)."""
    for key in [k for k in os.environ if k.startswith("DST_OPERATOR_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("DST_OPERATOR_"):
            monkeypatch.setenv(key, value)
    return parse([])


def test_non_default_deployment():
    objects = render(NON_DEFAULT)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "mirror/deepspeech-operator@sha256:" + "a" * 64
    assert pod["serviceAccountName"] == "dst-operator"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert "nodeAffinity" in pod["affinity"]
    assert one(objects, "ServiceAccount")["metadata"]["annotations"] == {"team": "speech"}
    assert one(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_metrics_service_and_servicemonitor_match():
    objects = render(NON_DEFAULT)
    service, monitor = one(objects, "Service"), one(objects, "ServiceMonitor")
    deployment = one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels[k] == v for k, v in service["spec"]["selector"].items())
    assert all(
        service["metadata"]["labels"][k] == v for k, v in monitor["spec"]["selector"]["matchLabels"].items()
    )
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert by_kind(render(), "Service") == [] and by_kind(render(), "ServiceMonitor") == []
    assert by_kind(render(), "PodDisruptionBudget") == []


def test_image_not_matching_the_allowed_prefixes_fails_the_render():
    with pytest.raises(helm_python.HelmRenderError, match="allowed prefix"):
        render({"trainer": {"images": {"0.9.3": "someone/else:0.9.3"}}})


def _docs_rbac_table():
    """The operator's RBAC table in docs/operator.md as {(group, resource): {verbs}}."""
    text = (REPO / "docs" / "operator.md").read_text()
    section = text.split("## RBAC the operator needs", 1)[1].split("\n## ", 1)[0]
    table: dict[tuple[str, str], set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        verbs = {v.strip() for v in cells[1].split(",")}
        for group, resources in re.findall(r"`([^`]*)` / ((?:`[^`]+`(?:, )?)+)", cells[0]):
            for resource in re.findall(r"`([^`]+)`", resources):
                table[(group.strip('"'), resource)] = verbs
    return table


def _flatten(rules):
    table: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                table.setdefault((group, resource), set()).update(rule["verbs"])
    return table


def test_operator_rbac_is_the_documented_least_privilege():
    (rules,) = operator_rules(render())
    granted = _flatten(rules)
    assert granted == _docs_rbac_table()
    assert not any(resource == "secrets" or "*" in verbs for (_, resource), verbs in granted.items())
    assert not any("*" in (group, resource) for group, resource in granted)
    assert not any(
        verb in verbs for verbs in granted.values() for verb in ("escalate", "bind", "impersonate")
    )


def test_operator_holds_everything_it_grants_trainers():
    """RBAC escalation prevention: a Role can only be created by someone who holds its rules."""
    (rules,) = operator_rules(render())
    granted = _flatten(rules)
    owner = Owner.of(
        {"metadata": {"name": "en", "namespace": "speech", "uid": "u"}, "apiVersion": "x", "kind": "y"}
    )
    roles = [o for o in trainer_rbac(owner, {}) if o["kind"] == "Role"]
    assert roles
    for rule in roles[0]["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert set(rule["verbs"]) <= granted[(group, resource)]


def test_namespaced_install():
    objects = render({"watchNamespaces": ["speech", "speech-dev"]})
    assert kinds(by_kind(objects, "ClusterRoleBinding")) == []
    assert kinds(by_kind(objects, "ClusterRole")) == [
        "ClusterRole/dso-deepspeech-operator-editor",
        "ClusterRole/dso-deepspeech-operator-viewer",
    ]
    roles, bindings = by_kind(objects, "Role"), by_kind(objects, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["speech", "speech-dev"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["speech", "speech-dev"]
    cluster_rules = operator_rules(render())[0]
    assert all(r["rules"] == cluster_rules for r in roles)
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "dso-deepspeech-operator",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "dso-deepspeech-operator", "namespace": "dso-system"}
        ]
    env = container_env(one(objects, "Deployment"))
    assert env["DST_OPERATOR_NAMESPACES"] == "speech,speech-dev"


def test_user_roles():
    objects = render()
    editor = next(o for o in objects if o["metadata"]["name"].endswith("-editor"))
    viewer = next(o for o in objects if o["metadata"]["name"].endswith("-viewer"))
    assert editor["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert set(_flatten(viewer["rules"]).get(("training.deepspeech.dev", "deepspeechtrainings"))) == {
        "get",
        "list",
        "watch",
    }
    assert "create" in _flatten(editor["rules"])[("training.deepspeech.dev", "deepspeechtrainings")]
    plain = render({"rbac": {"aggregateToDefaultRoles": False}})
    assert not any(
        "aggregate" in k for o in plain for k in o["metadata"].get("labels", {}) if o["kind"] == "ClusterRole"
    )
    assert kinds(render({"rbac": {"create": False, "userRoles": False}})) == [
        "CustomResourceDefinition/deepspeechtrainings.training.deepspeech.dev",
        "Deployment/dso-deepspeech-operator",
        "ServiceAccount/dso-deepspeech-operator",
    ]


def test_existing_service_account_needs_a_name():
    with pytest.raises(helm_python.HelmRenderError, match=r"serviceAccount\.name"):
        render({"serviceAccount": {"create": False}})
    objects = render({"serviceAccount": {"create": False, "name": "ops"}})
    assert by_kind(objects, "ServiceAccount") == []
    assert one(objects, "ClusterRoleBinding")["subjects"][0]["name"] == "ops"


def test_notes():
    notes = render_files({"watchNamespaces": ["speech"]})["templates/NOTES.txt"]
    assert "speech (namespaced install)" in notes and "deepspeech-operator/trainer:" in notes
    assert "kept on uninstall" in notes
