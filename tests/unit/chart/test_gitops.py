"""GitOps integration: the Argo CD health Lua run by a real Lua 5.1 interpreter (lupa) and the kstatus rules
(what Flux uses) on status objects the operator's own decision function produced; the shipped argocd-cm,
chart README and example objects carry exactly that Lua."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from tests.unit.operator.test_status_kstatus import kstatus

from .chartlib import CHART, MANIFESTS, documents
from .situations import situations

ARGOCD = MANIFESTS / "gitops" / "argocd"
FLUX = MANIFESTS / "gitops" / "flux"
HEALTH_LUA = ARGOCD / "health.lua"
HEALTH_KEY = "resource.customizations.health.training.deepspeech.dev_DeepSpeechTraining"
SITUATIONS = situations()
# Argo CD runs health scripts without the OS, IO or module libraries; the script must not need them.
SANDBOX_REMOVED = ("os", "io", "require", "dofile", "loadfile", "load", "loadstring", "package", "debug")


def run_lua(script: str, obj: dict[str, Any]) -> dict[str, str]:
    lua = lua51.LuaRuntime(unpack_returned_tuples=True, register_eval=False, register_builtins=False)
    env = lua.globals()
    assert env._VERSION == "Lua 5.1"
    for name in SANDBOX_REMOVED:
        env[name] = None
    env.obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script)
    return {"status": result["status"], "message": result["message"]}


@pytest.mark.parametrize("name", list(SITUATIONS))
def test_argocd_health(name):
    situation = SITUATIONS[name]
    health = run_lua(HEALTH_LUA.read_text(), situation.obj)
    assert health["status"] == situation.argocd
    assert isinstance(health["message"], str) and health["message"]


@pytest.mark.parametrize("name", list(SITUATIONS))
def test_kstatus(name):
    situation = SITUATIONS[name]
    assert kstatus(situation.obj) == situation.kstatus


def test_every_outcome_is_covered():
    assert {s.argocd for s in SITUATIONS.values()} == {"Progressing", "Healthy", "Degraded", "Suspended"}
    assert {s.kstatus for s in SITUATIONS.values()} == {"InProgress", "Current", "Failed", "Terminating"}


def test_health_messages_carry_the_operator_reason():
    failed = run_lua(HEALTH_LUA.read_text(), SITUATIONS["terminal failure: invalid spec"].obj)
    stalled = next(
        c
        for c in SITUATIONS["terminal failure: invalid spec"].obj["status"]["conditions"]
        if c["type"] == "Stalled"
    )
    assert failed["message"] == (stalled["message"] or stalled["reason"])
    unobserved = run_lua(HEALTH_LUA.read_text(), SITUATIONS["spec changed, not yet observed"].obj)
    assert unobserved["message"] == "Generation 2 not yet observed by the operator"


def test_lua_errors_are_not_swallowed():
    """The harness can fail: a broken script raises instead of passing silently."""
    with pytest.raises(lua51.LuaError):
        run_lua("return obj.status.conditions[1].type .. nil", SITUATIONS["running"].obj)


def test_argocd_cm_carries_the_lua_verbatim():
    (cm,) = documents((ARGOCD / "argocd-cm.yaml").read_text())
    assert (cm["kind"], cm["metadata"]["name"], cm["metadata"]["namespace"]) == (
        "ConfigMap",
        "argocd-cm",
        "argocd",
    )
    assert cm["data"] == {HEALTH_KEY: HEALTH_LUA.read_text()}


def _fenced_blocks(markdown: str, language: str) -> list[str]:
    blocks, current, inside = [], [], False
    for line in markdown.splitlines(keepends=True):
        if not inside and line.strip() == f"```{language}":
            inside, current = True, []
        elif inside and line.strip() == "```":
            inside = False
            blocks.append("".join(current))
        elif inside:
            current.append(line)
    return blocks


@pytest.mark.parametrize(
    "doc", [CHART / "README.md", Path(__file__).resolve().parents[3] / "docs" / "gitops.md"]
)
def test_docs_show_the_same_lua_and_flux_snippet(doc):
    text = doc.read_text()
    assert HEALTH_LUA.read_text() in _fenced_blocks(text, "lua")
    flux = yaml.safe_load((FLUX / "kustomization-trainings.yaml").read_text().split("---")[0])
    exprs = [yaml.safe_load(block) for block in _fenced_blocks(text, "yaml") if "healthCheckExprs" in block]
    assert exprs and exprs[0]["spec"]["healthCheckExprs"] == flux["spec"]["healthCheckExprs"]


def test_argocd_applications():
    operator, trainings = (
        documents((ARGOCD / f"application-{n}.yaml").read_text())[0] for n in ("operator", "trainings")
    )
    for app in (operator, trainings):
        assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
        assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]
    assert operator["spec"]["source"]["path"] == "charts/deepspeech-operator"
    assert (CHART / "Chart.yaml").is_file()
    assert int(operator["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) < 0
    assert "SkipDryRunOnMissingResource=true" in trainings["spec"]["syncPolicy"]["syncOptions"]


def test_flux_kustomizations():
    objects = [o for f in sorted(FLUX.glob("*.yaml")) for o in documents(f.read_text())]
    kustomizations = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Kustomization"}
    repos = {o["metadata"]["name"] for o in objects if o["kind"] == "GitRepository"}
    assert set(kustomizations) == {"deepspeech-operator", "speech-trainings"}
    for k in kustomizations.values():
        assert k["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
        assert k["spec"]["sourceRef"]["name"] in repos
    root = Path(__file__).resolve().parents[3]
    assert (root / kustomizations["deepspeech-operator"]["spec"]["path"] / "kustomization.yaml").is_file()
    assert kustomizations["speech-trainings"]["spec"]["dependsOn"] == [{"name": "deepspeech-operator"}]
