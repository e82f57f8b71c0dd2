"""Status helpers and the kstatus meaning of every row of operator-conventions.md §3's situation table.

`kstatus` below follows the evaluation order of kubernetes-sigs/cli-utils pkg/kstatus (as the conventions
summarise it), so the test checks what Flux would conclude, not just our own condition values. Both it and
`argo_health` are quick stand-ins: tests/integration/gitops/test_real_health.py runs the real kstatus
(cli-utils v0.37.2, whose generic rules do include Ready=False -> InProgress) and the shipped health.lua
under gopher-lua on the same objects and requires the same answers.
"""

from __future__ import annotations

import copy

import pytest
from deepspeech_operator import api
from deepspeech_operator.reconcile import decide
from deepspeech_operator.status import (
    append_history,
    desired_conditions,
    history_entry,
    merge_conditions,
    merge_patch,
    preflight_cause,
    progress_display,
)

from .factories import CONFIG, NOW, cr, defaulted_spec, job, pod


def kstatus(obj: dict) -> str:
    meta, status = obj["metadata"], obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    if "observedGeneration" in status and status["observedGeneration"] != meta.get("generation"):
        return "InProgress"
    conds = {c["type"]: c for c in status.get("conditions") or []}
    if conds.get("Reconciling", {}).get("status") == "True":
        return "InProgress"
    if conds.get("Stalled", {}).get("status") == "True":
        return "Failed"
    if "Ready" in conds:
        return "Current" if conds["Ready"]["status"] == "True" else "InProgress"
    return "Current"


def argo_health(obj: dict) -> str:
    """The Lua health check of conventions §4.2, in Python."""
    suspend = obj.get("spec", {}).get("suspend") is True
    st = obj.get("status")
    if st is None:
        return "Suspended" if suspend else "Progressing"
    gen = obj["metadata"].get("generation")
    if gen is not None and (st.get("observedGeneration") is None or st["observedGeneration"] < gen):
        return "Progressing"
    conds = {c["type"]: c for c in st.get("conditions") or []}
    if conds.get("Stalled", {}).get("status") == "True":
        return "Degraded"
    ready = conds.get("Ready")
    if suspend:
        return (
            "Suspended"
            if ready and ready["status"] == "True" and ready.get("reason") == "Suspended"
            else "Progressing"
        )
    return "Healthy" if ready and ready["status"] == "True" else "Progressing"


def with_status(body, decision):
    out = copy.deepcopy(body)
    out["status"] = decision.status
    return out


def training_body(**spec):
    body = cr(defaulted_spec(**spec))
    body = with_status(body, decide(body, [], [], CONFIG, NOW))
    body["status"]["run"]["stage"] = api.STAGE_TRAIN
    return body


def _row_not_observed():
    body = training_body()
    body["metadata"]["generation"] = 2  # spec edited, operator has not seen it yet
    return body, None, "InProgress", "Progressing"


def _row_queued():
    body = cr()
    return (
        with_status(body, decide(body, [], [], CONFIG, NOW)),
        api.PHASE_VALIDATING,
        "InProgress",
        "Progressing",
    )


def _row_kueue_queued():
    body = training_body()
    tj = job(body, "g1", api.STAGE_TRAIN, suspended=True)
    return (
        with_status(body, decide(body, [tj], [], CONFIG, NOW)),
        api.PHASE_QUEUED,
        "InProgress",
        "Progressing",
    )


def _row_running():
    body = training_body()
    tj = job(body, "g1", api.STAGE_TRAIN)
    d = decide(body, [tj], [pod(tj)], CONFIG, NOW)
    return with_status(body, d), api.PHASE_RUNNING, "InProgress", "Progressing"


def _row_retrying():
    body = training_body()
    tj = job(body, "g1", api.STAGE_TRAIN, failed=1)
    d = decide(body, [tj], [pod(tj, "Failed", exit_code=1)], CONFIG, NOW)
    assert d.status["conditions"][0]["reason"] == "Retrying"
    return with_status(body, d), api.PHASE_RUNNING, "InProgress", "Progressing"


def _row_preempted():
    body = training_body()
    tj = job(body, "g1", api.STAGE_TRAIN)
    d = decide(body, [tj], [pod(tj, "Failed", exit_code=143, disrupted=True)], CONFIG, NOW)
    assert d.status["conditions"][0]["reason"] == "Preempted"
    return with_status(body, d), api.PHASE_QUEUED, "InProgress", "Progressing"


def _row_succeeded():
    body = training_body()
    tj = job(body, "g1", api.STAGE_TRAIN, "complete")
    d = decide(body, [tj], [pod(tj, "Succeeded", exit_code=0)], CONFIG, NOW)
    return with_status(body, d), api.PHASE_SUCCEEDED, "Current", "Healthy"


@pytest.mark.parametrize("reason", ["BackoffLimitExceeded", "DeadlineExceeded", "PodFailurePolicy"])
def test_row_terminal_failure(reason):
    body = training_body()
    tj = job(body, "g1", api.STAGE_TRAIN, "failed", reason=reason)
    obj = with_status(body, decide(body, [tj], [], CONFIG, NOW))
    assert obj["status"]["phase"] == api.PHASE_FAILED
    assert (kstatus(obj), argo_health(obj)) == ("Failed", "Degraded")


def test_row_invalid_spec():
    body = cr(defaulted_spec(deepspeech={"version": "0.9.3", "image": "other/image:1"}))
    obj = with_status(body, decide(body, [], [], CONFIG, NOW))
    assert (obj["status"]["phase"], kstatus(obj), argo_health(obj)) == (
        api.PHASE_FAILED,
        "Failed",
        "Degraded",
    )


def _row_suspending():
    body = training_body()
    tj = job(body, "g1", api.STAGE_TRAIN)
    body["spec"]["suspend"] = True
    d = decide(body, [tj], [pod(tj)], CONFIG, NOW)
    assert d.status["conditions"][0]["reason"] == "Suspending"
    return with_status(body, d), api.PHASE_RUNNING, "InProgress", "Progressing"


def _row_suspended():
    body = training_body()
    body["spec"]["suspend"] = True
    return with_status(body, decide(body, [], [], CONFIG, NOW)), api.PHASE_SUSPENDED, "Current", "Suspended"


def _row_deleting():
    obj, *_ = _row_running()
    obj["metadata"]["deletionTimestamp"] = NOW
    return obj, api.PHASE_RUNNING, "Terminating", "Progressing"


ROWS = {
    "spec changed, not yet observed": _row_not_observed,
    "job being created": _row_queued,
    "queued in kueue": _row_kueue_queued,
    "running": _row_running,
    "retrying after a counted failure": _row_retrying,
    "preempted or evicted": _row_preempted,
    "succeeded": _row_succeeded,
    "suspending": _row_suspending,
    "suspended, pods gone": _row_suspended,
    "being deleted": _row_deleting,
}


@pytest.mark.parametrize("row", list(ROWS))
def test_situation_table_row(row):
    obj, phase, expected_kstatus, expected_argo = ROWS[row]()
    if phase is not None:
        assert obj["status"]["phase"] == phase
    assert kstatus(obj) == expected_kstatus
    assert argo_health(obj) == expected_argo
    conds = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
    assert not (conds["Reconciling"] == "True" and conds["Stalled"] == "True")  # never both
    assert conds["Ready"] in ("True", "False")  # always written


def test_unknown_phase_is_rejected():
    with pytest.raises(ValueError, match=r"status\.phase"):
        desired_conditions("Bogus", "x", "", 1, ("Unknown", "", ""))


def test_merge_conditions_resets_time_on_change():
    old = [{"type": "Ready", "status": "False", "lastTransitionTime": "old"}]
    new = merge_conditions(
        old, [{"type": "Ready", "status": "True"}, {"type": "Stalled", "status": "False"}], NOW
    )
    assert [c["lastTransitionTime"] for c in new] == [NOW, NOW]
    same = merge_conditions(old, [{"type": "Ready", "status": "False"}], NOW)
    assert same[0]["lastTransitionTime"] == "old"


def test_merge_patch():
    old = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1], "gone": True}
    new = {"a": 1, "b": {"c": 2, "d": 4}, "e": [1, 2], "f": None}
    assert merge_patch(old, new) == {"gone": None, "b": {"d": 4}, "e": [1, 2], "f": None}
    assert merge_patch(None, {"x": {"y": 1}}) == {"x": {"y": 1}}
    assert merge_patch({"x": 1}, {"x": 1}) == {}
    assert merge_patch({"x": 1}, {"x": {"y": 1}}) == {"x": {"y": 1}}


def test_progress_display():
    assert progress_display(None) is None
    assert progress_display({"epoch": 1}) is None
    assert progress_display({"epochs": 4}) == "0/4"
    assert progress_display({"epoch": 2, "epochs": 4}) == "2/4"


def test_history_entry_and_bounds():
    assert history_entry({}, NOW) is None
    running = {"phase": "Running", "run": {"id": "g1", "generation": 1}}
    assert history_entry(running, NOW) == {
        "id": "g1",
        "generation": 1,
        "phase": "Superseded",
        "reason": "SpecChanged",
        "completionTime": NOW,
    }
    failed = {
        "phase": "Failed",
        "run": {"id": "g2", "generation": 2, "completionTime": "t"},
        "conditions": [{"type": "Ready", "reason": "DeadlineExceeded"}],
    }
    assert history_entry(failed, NOW)["reason"] == "DeadlineExceeded"
    assert history_entry(failed, NOW)["completionTime"] == "t"
    succeeded_other_model = {"phase": "Succeeded", "run": {"id": "g3"}, "model": {"uri": "u", "runId": "g1"}}
    assert "modelUri" not in history_entry(succeeded_other_model, NOW)
    hist = append_history([{"id": "g1"}, {"id": "g2"}], {"id": "g2", "phase": "Failed"}, 10)
    assert hist == [{"id": "g1"}, {"id": "g2", "phase": "Failed"}]
    assert append_history(None, None, 3) == []
    assert len(append_history([{"id": str(i)} for i in range(5)], {"id": "x"}, 3)) == 3


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (None, ""),
        ({"kind": "train", "ok": False, "error": "boom"}, ""),
        ({"kind": "preflight", "ok": True, "problemCount": 0, "problems": []}, ""),
        (
            {
                "kind": "preflight",
                "problemCount": 7,
                "problems": [{"file": "s3://c/dev.csv", "line": 12, "code": "csv_syntax", "message": "bad"}],
            },
            "preflight found 7 problems; first: s3://c/dev.csv:12 [csv_syntax] bad",
        ),
        # A problem without a line (line 0: the file itself) names only the file.
        (
            {"kind": "preflight", "problemCount": 1, "problems": [{"file": "spec", "line": 0, "code": "x"}]},
            "preflight found 1 problem; first: spec [x]",
        ),
        # Problems dropped to fit the termination message: the count still says how many.
        ({"kind": "preflight", "problemCount": 3, "problems": []}, "preflight found 3 problems"),
        # A count below the listed problems (or none) falls back to the list.
        (
            {"kind": "preflight", "problems": [{"file": "a.csv", "line": 2}]},
            "preflight found 1 problem; first: a.csv:2",
        ),
    ],
)
def test_preflight_cause_names_first_problem_and_count(result, expected):
    assert preflight_cause(result) == expected
