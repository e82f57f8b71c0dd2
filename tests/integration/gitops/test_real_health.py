"""Flux's and Argo CD's verdicts on operator-produced objects, from their own libraries: kstatus of
sigs.k8s.io/cli-utils and the shipped health.lua under gopher-lua (tests/cluster/go/health, built from
Go modules like the control plane). The quick unit tests' Python re-implementations must agree."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from typing import Any

import pytest
from deepspeech_operator import api
from deepspeech_operator.reconcile import decide
from deepspeech_operator.status import blocked_status

from tests.cluster.config import REPO
from tests.unit.operator.factories import CONFIG, NOW, cr, defaulted_spec, job, pod
from tests.unit.operator.test_status_kstatus import ROWS, argo_health, kstatus, training_body, with_status

HEALTH_LUA = REPO / "manifests" / "gitops" / "argocd" / "health.lua"


@pytest.fixture(scope="session")
def health_tool() -> Any:
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain to build the kstatus/Argo CD health tool")
    from tests.cluster.build import health_binary

    return health_binary()


def _failed(reason: str) -> dict[str, Any]:
    body = training_body()
    tj = job(body, "g1", api.STAGE_TRAIN, "failed", reason=reason)
    return with_status(body, decide(body, [tj], [], CONFIG, NOW))


def _validating() -> dict[str, Any]:
    body = cr()
    body = with_status(body, decide(body, [], [], CONFIG, NOW))
    pj = job(body, "g1", api.STAGE_PREFLIGHT)
    return with_status(body, decide(body, [pj], [pod(pj)], CONFIG, NOW))


def _pending() -> dict[str, Any]:
    return cr()  # created, the operator has not written status yet


def _blocked() -> dict[str, Any]:
    body = training_body()
    decided = decide(body, [], [], CONFIG, NOW).status
    out = copy.deepcopy(body)
    out["status"] = blocked_status(decided, "NameConflict", "Job speech/en-g1-train exists ...", 1, NOW)
    return out


def _invalid() -> dict[str, Any]:
    body = cr(defaulted_spec(deepspeech={"version": "0.9.3", "image": "other/image:1"}))
    return with_status(body, decide(body, [], [], CONFIG, NOW))


SITUATIONS: dict[str, tuple[Any, str, str]] = {
    **{name: (lambda f=f: f()[0], *f()[2:]) for name, f in ROWS.items()},
    "pending, no status yet": (_pending, "Current", "Progressing"),
    "validating (preflight running)": (_validating, "InProgress", "Progressing"),
    "failed: backoff limit": (lambda: _failed("BackoffLimitExceeded"), "Failed", "Degraded"),
    "failed: deadline": (lambda: _failed("DeadlineExceeded"), "Failed", "Degraded"),
    "failed: invalid spec": (_invalid, "Failed", "Degraded"),
    "stalled on a name conflict": (_blocked, "Failed", "Degraded"),
}


def _evaluate(tool: Any, objects: list[dict[str, Any]]) -> list[dict[str, str]]:
    done = subprocess.run(
        [str(tool), "-lua", str(HEALTH_LUA)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_flux_and_argo_verdicts_in_every_situation(health_tool):
    names = list(SITUATIONS)
    objects = [SITUATIONS[name][0]() for name in names]
    verdicts = _evaluate(health_tool, objects)
    table = []
    for name, obj, verdict in zip(names, objects, verdicts, strict=True):
        _, want_kstatus, want_argo = SITUATIONS[name]
        table.append(
            f"{name:34} {obj.get('status', {}).get('phase', '-'):10} {verdict['kstatus']:12} {verdict['argo']}"
        )
        assert (verdict["kstatus"], verdict["argo"]) == (want_kstatus, want_argo), name
        assert (kstatus(obj), argo_health(obj)) == (verdict["kstatus"], verdict["argo"]), (
            f"{name}: the Python re-implementation disagrees with the real libraries"
        )
    print("\n".join(["situation                          phase      kstatus      Argo CD", *table]))


def test_kstatus_without_the_operators_conditions(health_tool):
    """What real kstatus does with Ready alone (no Reconciling/Stalled) on a custom resource: the Python
    helper used to claim a Ready rule; this pins the library's actual answer."""
    base = {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": "x", "generation": 1}}
    ready_false = {
        **base,
        "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "False"}]},
    }
    ready_true = {
        **base,
        "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]},
    }
    real = [v["kstatus"] for v in _evaluate(health_tool, [ready_false, ready_true])]
    assert real == [kstatus(ready_false), kstatus(ready_true)]
    print("Ready=False alone:", real[0], "| Ready=True alone:", real[1])
