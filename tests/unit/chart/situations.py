"""DeepSpeechTraining objects in every situation of operator-conventions.md §3, with status produced by the
operator's own decision function (reconcile.decide) from simulated Jobs and Pods, plus what Flux (kstatus) and
Argo CD must conclude for each. The rows of tests/unit/operator/test_status_kstatus.py are reused; the terminal
failures and a few situations GitOps users meet are added here."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deepspeech_operator import api
from deepspeech_operator.reconcile import decide

from tests.unit.operator.factories import CONFIG, NOW, cr, defaulted_spec, job, pod
from tests.unit.operator.test_status_kstatus import ROWS, training_body, with_status


@dataclass(frozen=True)
class Situation:
    obj: dict[str, Any]
    kstatus: str  # Flux / kstatus: InProgress, Current, Failed, Terminating
    argocd: str  # Argo CD health: Progressing, Healthy, Degraded, Suspended


def _failed(reason: str) -> Callable[[], tuple[dict, str, str, str]]:
    def row() -> tuple[dict, str, str, str]:
        body = training_body()
        train_job = job(body, "g1", api.STAGE_TRAIN, "failed", reason=reason)
        return (
            with_status(body, decide(body, [train_job], [], CONFIG, NOW)),
            api.PHASE_FAILED,
            "Failed",
            "Degraded",
        )

    return row


def _invalid_spec() -> tuple[dict, str, str, str]:
    body = cr(defaulted_spec(deepspeech={"version": "0.9.3", "image": "other/image:1"}))
    return with_status(body, decide(body, [], [], CONFIG, NOW)), api.PHASE_FAILED, "Failed", "Degraded"


def _unschedulable() -> tuple[dict, str, str, str]:
    body = training_body()
    train_job = job(body, "g1", api.STAGE_TRAIN)
    pending = pod(
        train_job, "Pending", unschedulable="0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    )
    obj = with_status(body, decide(body, [train_job], [pending], CONFIG, NOW))
    return obj, api.PHASE_QUEUED, "InProgress", "Progressing"


def _dry_run_complete() -> tuple[dict, str, str, str]:
    body = cr(defaulted_spec(dryRun=True))
    body = with_status(body, decide(body, [], [], CONFIG, NOW))
    preflight = job(body, "g1", api.STAGE_PREFLIGHT, "complete")
    done = pod(preflight, "Succeeded", exit_code=0)
    return (
        with_status(body, decide(body, [preflight], [done], CONFIG, NOW)),
        api.PHASE_SUCCEEDED,
        "Current",
        "Healthy",
    )


def _suspend_after_success() -> tuple[dict, str, str, str]:
    """spec.suspend set on a finished run: nothing to suspend, the result stays (and stays Healthy)."""
    obj, *_ = ROWS["succeeded"]()
    body = copy.deepcopy(obj)
    body["spec"]["suspend"] = True
    body["metadata"]["generation"] += 1
    return with_status(body, decide(body, [], [], CONFIG, NOW)), api.PHASE_SUCCEEDED, "Current", "Healthy"


def _no_status_yet() -> tuple[dict, str, str, str]:
    """Just applied, the operator has not written anything (kstatus: nothing known is Current)."""
    return cr(), None, "Current", "Progressing"


EXTRA: dict[str, Callable[[], tuple[dict, str | None, str, str]]] = {
    "terminal failure: backoff exhausted": _failed("BackoffLimitExceeded"),
    "terminal failure: deadline": _failed("DeadlineExceeded"),
    "terminal failure: permanent exit code": _failed("PodFailurePolicy"),
    "terminal failure: invalid spec": _invalid_spec,
    "unschedulable, waiting for a GPU node": _unschedulable,
    "dry run finished": _dry_run_complete,
    "suspend set after success": _suspend_after_success,
    "applied, no status yet": _no_status_yet,
}


def situations() -> dict[str, Situation]:
    """Name -> situation; the phase each builder expects is checked here, so a drifting builder fails."""
    out: dict[str, Situation] = {}
    for name, build in {**ROWS, **EXTRA}.items():
        obj, phase, kstatus, argocd = build()
        if phase is not None:
            assert obj["status"]["phase"] == phase, (
                f"{name}: phase {obj['status']['phase']}, expected {phase}"
            )
        out[name] = Situation(obj, kstatus, argocd)
    return out
