"""reconcile.decide: every branch of the run state machine, driven by hand-built observations."""

from __future__ import annotations

import copy
import json
from typing import Any

from deepspeech_operator import api, naming
from deepspeech_operator.config import OperatorConfig
from deepspeech_operator.reconcile import CreateJob, DeleteJob, adopt_run, decide

from .factories import CONFIG, NOW, UID, cr, defaulted_spec, job, pod


def step(
    body: dict[str, Any], jobs: list | None = None, pods: list | None = None, config: OperatorConfig = CONFIG
):
    return decide(body, jobs or [], pods or [], config, NOW)


def after(body: dict[str, Any], decision) -> dict[str, Any]:
    """The CR once the decision's status patch landed."""
    new = copy.deepcopy(body)
    new["status"] = copy.deepcopy(decision.status)
    return new


def cond(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == ctype)


def kinds(decision) -> list[str]:
    return [type(a).__name__ for a in decision.actions]


def reasons(decision) -> list[str]:
    return [e.reason for e in decision.events]


def created(decision) -> dict[str, Any]:
    return next(a.job for a in decision.actions if isinstance(a, CreateJob))


def test_new_cr_creates_rbac_and_preflight_job():
    d = step(cr())
    assert kinds(d) == ["CreateJob"]
    assert created(d)["metadata"]["name"] == "en-g1-preflight"
    assert d.status["phase"] == api.PHASE_VALIDATING
    assert d.status["run"]["id"] == "g1" and d.status["run"]["stage"] == api.STAGE_PREFLIGHT
    assert d.status["observedGeneration"] == 1
    assert d.status["progress"] == {"runId": "g1", "epoch": 0, "epochs": 3, "display": "0/3"}
    assert cond(d.status, "Reconciling")["status"] == "True"
    assert cond(d.status, "Validated")["status"] == "Unknown"
    assert "RunStarted" in reasons(d) and "JobCreated" in reasons(d)
    start = next(a for a in d.actions if isinstance(a, CreateJob))
    assert [o["kind"] for o in start.trainer_objects] == ["ServiceAccount", "Role", "RoleBinding"]


def test_preflight_disabled_starts_with_training():
    d = step(cr(defaulted_spec(preflight=False)))
    assert created(d)["metadata"]["name"] == "en-g1-train"
    assert d.status["phase"] == api.PHASE_QUEUED
    assert cond(d.status, "Validated")["reason"] == "PreflightSkipped"


def test_unchanged_reapply_creates_nothing():
    body = cr()
    d1 = step(body)
    b1 = after(body, d1)
    j = job(b1, "g1", api.STAGE_PREFLIGHT)
    d2 = step(b1, [j])
    assert not any(isinstance(a, CreateJob) for a in d2.actions)
    assert d2.status["run"] == {**d1.status["run"], "attempt": 1}


def test_preflight_running_then_passes_and_train_job_created_in_same_pass():
    body = after(cr(), step(cr()))
    pj = job(body, "g1", api.STAGE_PREFLIGHT)
    running = step(body, [pj], [pod(pj)])
    assert running.status["phase"] == api.PHASE_VALIDATING
    assert cond(running.status, "Validated")["status"] == "Unknown"
    assert cond(running.status, "Ready")["reason"] == "Running"
    body = after(body, running)
    done = job(body, "g1", api.STAGE_PREFLIGHT, "complete")
    msg = json.dumps(
        {"kind": "preflight", "ok": True, "rows": 120, "problemCount": 0, "problems": [], "alphabetSize": 29}
    )
    d = step(body, [done], [pod(done, "Succeeded", exit_code=0, message=msg)])
    assert created(d)["metadata"]["name"] == "en-g1-train"
    assert d.status["run"]["stage"] == api.STAGE_TRAIN
    assert d.status["preflight"] == {
        "runId": "g1",
        "ok": True,
        "rows": 120,
        "problemCount": 0,
        "alphabetSize": 29,
    }
    assert cond(d.status, "Validated")["status"] == "True"
    assert cond(d.status, "Validated")["message"] == "120 rows checked"
    assert d.status["phase"] == api.PHASE_QUEUED


def _training(spec: dict | None = None) -> dict[str, Any]:
    body = cr(spec or defaulted_spec())
    body = after(body, step(body))
    status = copy.deepcopy(body["status"])
    status["run"]["stage"] = api.STAGE_TRAIN
    status["run"]["jobName"] = "en-g1-train"
    status["preflight"] = {"runId": "g1", "ok": True}
    body["status"] = status
    return body


def test_train_pod_running_sets_running():
    body = _training()
    tj = job(body, "g1", api.STAGE_TRAIN)
    d = step(body, [tj], [pod(tj)])
    assert d.status["phase"] == api.PHASE_RUNNING
    assert cond(d.status, "Ready")["status"] == "False"
    assert cond(d.status, "Running")["reason"] == "Running"
    assert d.actions == []


def test_train_pod_pending_is_admitted():
    body = _training()
    tj = job(body, "g1", api.STAGE_TRAIN)
    d = step(body, [tj], [pod(tj, "Pending")])
    assert (d.status["phase"], cond(d.status, "Ready")["reason"]) == (api.PHASE_QUEUED, "Admitted")
    assert "Admitted" not in reasons(d)  # a passing state: in the condition, not an Event


def test_a_succeeded_pod_before_the_job_is_complete_stays_running():
    # Seen in make demo: Running → Queued ("waits for its pod to start") → Succeeded while the Job
    # controller had not yet set Complete on a Job whose pod had already succeeded.
    body = _training()
    tj = job(body, "g1", api.STAGE_TRAIN)
    d = step(body, [tj], [pod(tj, "Succeeded", exit_code=0)])
    assert (d.status["phase"], cond(d.status, "Ready")["reason"]) == (api.PHASE_RUNNING, "Completing")
    assert "Completing" not in reasons(d)


def test_unschedulable_is_visible():
    body = _training()
    tj = job(body, "g1", api.STAGE_TRAIN)
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    d = step(body, [tj], [pod(tj, "Pending", unschedulable=message)])
    assert d.status["phase"] == api.PHASE_QUEUED
    assert cond(d.status, "Ready")["reason"] == "Unschedulable"
    assert d.status["run"]["lastFailureReason"] == f"Unschedulable: {message}"
    assert any(e.type == "Warning" and e.reason == "Unschedulable" for e in d.events)


def test_eviction_is_preempted_not_failed():
    body = _training()
    tj = job(body, "g1", api.STAGE_TRAIN)
    d = step(body, [tj], [pod(tj, "Failed", exit_code=143, disrupted=True)])
    assert d.status["phase"] == api.PHASE_QUEUED
    assert cond(d.status, "Ready")["reason"] == "Preempted"
    assert cond(d.status, "Stalled")["status"] == "False"
    assert d.status["run"]["lastFailureReason"] == "EvictionByEvictionAPI"
    # ... and a replacement pod running again is simply Running.
    d2 = step(
        body,
        [tj],
        [
            pod(tj, "Failed", exit_code=143, disrupted=True),
            pod(tj, "Running", created="2030-01-01T00:00:05Z"),
        ],
    )
    assert d2.status["phase"] == api.PHASE_RUNNING


def test_counted_failure_with_backoff_left_is_retrying_with_oomkilled():
    body = _training()
    tj = job(body, "g1", api.STAGE_TRAIN, failed=1)
    d = step(body, [tj], [pod(tj, "Failed", exit_code=137, reason="OOMKilled")])
    assert d.status["phase"] == api.PHASE_RUNNING
    assert cond(d.status, "Ready")["reason"] == "Retrying"
    assert d.status["run"]["attempt"] == 2
    assert d.status["run"]["lastExitCode"] == 137
    assert d.status["run"]["lastFailureReason"] == "OOMKilled"


def test_log_tail_reason_when_message_is_not_json():
    body = _training()
    tj = job(body, "g1", api.STAGE_TRAIN, failed=1)
    d = step(body, [tj], [pod(tj, "Failed", exit_code=1, message="Traceback: boom")])
    assert d.status["run"]["lastFailureReason"] == "Error: Traceback: boom"


def test_invalid_data_exit_fails_job_stalled():
    body = _training()
    tj = job(body, "g1", api.STAGE_TRAIN, "failed", reason="PodFailurePolicy", failed=1)
    msg = json.dumps({"kind": "train", "runId": "g1", "ok": False, "error": "transcript has bad chars"})
    d = step(body, [tj], [pod(tj, "Failed", exit_code=65, message=msg)])
    assert d.status["phase"] == api.PHASE_FAILED
    ready, stalled, reconciling = (cond(d.status, t) for t in ("Ready", "Stalled", "Reconciling"))
    assert (ready["status"], stalled["status"], reconciling["status"]) == ("False", "True", "False")
    assert stalled["reason"] == "PodFailurePolicy"
    assert "last exit code 65" in stalled["message"] and "bad chars" in stalled["message"]
    assert d.status["run"]["lastExitCode"] == 65
    assert d.actions == []
    # Failed stays failed: no new Job on the next event.
    d2 = step(after(body, d), [tj])
    assert d2.actions == [] and d2.status["phase"] == api.PHASE_FAILED
    assert d2.events == []


def test_preflight_failure_reports_problems():
    body = after(cr(), step(cr()))
    pj = job(body, "g1", api.STAGE_PREFLIGHT, "failed", reason="PodFailurePolicy")
    msg = json.dumps(
        {
            "kind": "preflight",
            "ok": False,
            "rows": 10,
            "problemCount": 1,
            "problems": [
                {
                    "file": "s3://corpus/cv/train.csv",
                    "line": 3,
                    "code": "missing-wav",
                    "message": "no such key",
                    "extra": 1,
                }
            ],
        }
    )
    d = step(body, [pj], [pod(pj, "Failed", exit_code=65, message=msg)])
    assert d.status["phase"] == api.PHASE_FAILED
    assert d.status["preflight"]["ok"] is False
    assert d.status["preflight"]["problems"] == [
        {"file": "s3://corpus/cv/train.csv", "line": 3, "code": "missing-wav", "message": "no such key"}
    ]
    assert cond(d.status, "Validated")["status"] == "False"
    # kubectl describe and Argo CD show only condition messages: they name the first problem and the count.
    for ctype in ("Ready", "Stalled", "Validated"):
        message = cond(d.status, ctype)["message"]
        assert message.startswith(
            "preflight found 1 problem; first: s3://corpus/cv/train.csv:3 [missing-wav] no such key; "
        ), message
        assert "exit code 65" in message


def test_success_takes_model_metrics_checkpoint_from_termination_message():
    body = _training()
    tj = job(body, "g1", api.STAGE_TRAIN, "complete")
    msg = json.dumps(
        {
            "kind": "train",
            "runId": "g1",
            "ok": True,
            "model": {"uri": "s3://models/en/g1/", "files": ["output_graph.pbmm"]},
            "metrics": {"wer": 0.12, "cer": 0.05, "loss": 20.5, "junk": "x"},
            "checkpoint": {"uri": "s3://models/en/checkpoints/", "epoch": 3},
            "epochsDone": 3,
        }
    )
    d = step(body, [tj], [pod(tj, "Succeeded", exit_code=0, message=msg)])
    assert d.status["phase"] == api.PHASE_SUCCEEDED
    assert d.status["model"] == {"uri": "s3://models/en/g1/", "runId": "g1", "files": ["output_graph.pbmm"]}
    assert d.status["metrics"] == {"wer": 0.12, "cer": 0.05, "loss": 20.5}
    assert d.status["checkpoint"] == {"uri": "s3://models/en/checkpoints/", "epoch": 3}
    assert d.status["progress"]["display"] == "3/3"
    assert d.status["run"]["completionTime"] == "2030-01-01T00:01:00Z"
    assert [cond(d.status, t)["status"] for t in ("Ready", "Reconciling", "Stalled")] == [
        "True",
        "False",
        "False",
    ]
    assert "ModelExported" in reasons(d)


def test_success_without_message_uses_contract_model_folder():
    body = _training()
    tj = job(body, "g1", api.STAGE_TRAIN, "complete")
    d = step(body, [tj], [pod(tj, "Succeeded", exit_code=0)])
    assert d.status["model"] == {"uri": "s3://models/en/en/g1-11111111/", "runId": "g1"}
    assert "metrics" not in d.status


def test_dry_run_stops_after_preflight():
    spec = defaulted_spec(dryRun=True)
    body = after(cr(spec), step(cr(spec)))
    pj = job(body, "g1", api.STAGE_PREFLIGHT, "complete")
    d = step(body, [pj], [pod(pj, "Succeeded", exit_code=0)])
    assert not any(isinstance(a, CreateJob) for a in d.actions)
    assert d.status["phase"] == api.PHASE_SUCCEEDED
    assert cond(d.status, "Ready")["reason"] == "DryRunComplete"


def test_kueue_suspended_job_is_queued_then_preempted():
    body = _training()
    tj = job(body, "g1", api.STAGE_TRAIN, suspended=True)
    d = step(body, [tj])
    assert (d.status["phase"], cond(d.status, "Ready")["reason"]) == (api.PHASE_QUEUED, "Queued")
    body["status"]["phase"] = api.PHASE_RUNNING
    d2 = step(body, [tj])
    assert cond(d2.status, "Ready")["reason"] == "Preempted"


def test_spec_change_starts_new_run_deletes_old_job_and_waits_for_its_pods():
    body = _training()
    old = job(body, "g1", api.STAGE_TRAIN)
    running = pod(old)
    body["status"]["phase"] = api.PHASE_RUNNING
    body["spec"]["training"]["epochs"] = 5
    body["metadata"]["generation"] = 2
    d = step(body, [old], [running])
    assert d.status["run"]["id"] == "g2"
    assert DeleteJob("en-g1-train", "Foreground") in d.actions
    assert not any(isinstance(a, CreateJob) for a in d.actions)  # old pod still holds the GPU
    assert d.status["phase"] == api.PHASE_PENDING
    assert cond(d.status, "Ready")["reason"] == "WaitingForPreviousPods"
    assert d.status["history"] == [
        {"id": "g1", "generation": 1, "phase": "Superseded", "reason": "SpecChanged", "completionTime": NOW}
    ]
    assert d.status["progress"]["runId"] == "g2" and d.status["progress"]["epochs"] == 5
    assert "RunSuperseded" in reasons(d)
    # Once the old pod is gone the new run's preflight starts; the deleting Job is not deleted twice.
    b2 = after(body, d)
    d2 = step(b2, [job(body, "g1", api.STAGE_TRAIN, deleting=True)])
    assert created(d2)["metadata"]["name"] == "en-g2-preflight"
    assert not any(isinstance(a, DeleteJob) for a in d2.actions)


def test_spec_change_after_success_keeps_model_and_records_history():
    body = _training()
    tj = job(body, "g1", api.STAGE_TRAIN, "complete")
    msg = json.dumps({"kind": "train", "model": {"uri": "s3://models/en/g1/"}, "metrics": {"wer": 0.2}})
    body = after(body, step(body, [tj], [pod(tj, "Succeeded", exit_code=0, message=msg)]))
    body["spec"]["data"]["train"] = ["s3://corpus/cv/train2.csv"]
    body["metadata"]["generation"] = 2
    d = step(body, [tj])
    assert DeleteJob("en-g1-train", "Background") in d.actions
    assert created(d)["metadata"]["name"] == "en-g2-preflight"
    assert d.status["history"][-1] == {
        "id": "g1",
        "generation": 1,
        "phase": "Succeeded",
        "reason": "Succeeded",
        "completionTime": "2030-01-01T00:01:00Z",
        "modelUri": "s3://models/en/g1/",
        "wer": 0.2,
    }
    assert d.status["model"]["uri"] == "s3://models/en/g1/"  # last successful run's model stays


def test_history_is_bounded():
    body = _training()
    body["status"]["history"] = [{"id": f"g{i}", "generation": i, "phase": "Failed"} for i in range(-20, 0)]
    body["spec"]["training"]["epochs"] = 9
    body["metadata"]["generation"] = 2
    d = step(body, [], [], OperatorConfig(history_limit=4))
    assert len(d.status["history"]) == 4 and d.status["history"][-1]["id"] == "g1"


def test_suspend_toggle_is_not_a_new_run_and_deletes_job_foreground():
    body = _training()
    tj = job(body, "g1", api.STAGE_TRAIN)
    body["status"]["phase"] = api.PHASE_RUNNING
    body["spec"]["suspend"] = True
    body["metadata"]["generation"] = 2
    d = step(body, [tj], [pod(tj)])
    assert d.status["run"]["id"] == "g1"
    assert d.actions == [DeleteJob("en-g1-train", "Foreground")]
    assert (d.status["phase"], cond(d.status, "Ready")["reason"]) == (api.PHASE_RUNNING, "Suspending")
    assert cond(d.status, "Reconciling")["status"] == "True"
    assert d.status["run"]["suspended"] is True
    # Job still terminating: nothing new.
    b2 = after(body, d)
    d2 = step(b2, [job(body, "g1", api.STAGE_TRAIN, deleting=True)], [pod(tj)])
    assert d2.actions == [] and d2.status["phase"] == api.PHASE_RUNNING
    # Pods gone: Suspended, Ready=True (kstatus Current).
    d3 = step(b2, [], [])
    assert d3.status["phase"] == api.PHASE_SUSPENDED
    assert [cond(d3.status, t)["status"] for t in ("Ready", "Reconciling", "Stalled", "Suspended")] == [
        "True",
        "False",
        "False",
        "True",
    ]
    # Resume: a new Job with the -s1 suffix, same run.
    b3 = after(b2, d3)
    b3["spec"]["suspend"] = False
    b3["metadata"]["generation"] = 3
    d4 = step(b3)
    assert created(d4)["metadata"]["name"] == "en-g1-train-s1"
    assert d4.status["run"]["resumes"] == 1 and d4.status["run"]["suspended"] is False
    assert "Resumed" in reasons(d4)
    # The same decision again (operator restarted before the status patch) gives the same name.
    assert created(step(b3))["metadata"]["name"] == "en-g1-train-s1"


def test_suspend_before_any_job_is_suspended_immediately():
    spec = defaulted_spec(suspend=True)
    d = step(cr(spec))
    assert d.actions == []
    assert d.status["phase"] == api.PHASE_SUSPENDED
    assert d.status["run"]["suspended"] is False  # nothing ran, so resuming needs no new suffix
    body = after(cr(spec), d)
    body["spec"]["suspend"] = False
    assert created(step(body))["metadata"]["name"] == "en-g1-preflight"


def test_leftover_active_job_of_same_run_is_stopped():
    body = _training()
    body["status"]["run"]["resumes"] = 1
    stale = job(body, "g1", api.STAGE_TRAIN)  # the -s0 Job, somehow still active
    current = job(body, "g1", api.STAGE_TRAIN, resumes=1)
    d = step(body, [stale, current], [pod(current, name="p1")])
    assert DeleteJob("en-g1-train", "Foreground") in d.actions


def test_job_deleted_by_someone_else_waits_then_recreates():
    body = _training()
    tj = job(body, "g1", api.STAGE_TRAIN, deleting=True)
    d = step(body, [tj], [pod(tj)])
    assert cond(d.status, "Ready")["reason"] == "JobDeleted" and d.actions == []
    assert created(step(body))["metadata"]["name"] == "en-g1-train"


def test_foreign_jobs_are_ignored():
    body = after(cr(), step(cr()))
    foreign = job(body, "g1", api.STAGE_PREFLIGHT, "failed", owner_uid="someone-else")
    d = step(body, [foreign])
    assert created(d)["metadata"]["name"] == "en-g1-preflight"


def test_lost_status_adopts_existing_run_from_jobs():
    body = cr(generation=3)  # suspend toggled twice meanwhile; the run was started at generation 1
    tj = job(cr(), "g1", api.STAGE_TRAIN, resumes=1)
    pj = job(cr(), "g1", api.STAGE_PREFLIGHT, "complete")
    d = step(body, [pj, tj], [pod(tj)])
    assert d.status["run"]["id"] == "g1" and d.status["run"]["resumes"] == 1
    assert d.status["phase"] == api.PHASE_RUNNING
    assert not any(isinstance(a, CreateJob) for a in d.actions)


def test_adoption_never_revives_an_older_run():
    spec_a = defaulted_spec()
    old_a = job(cr(spec_a), "g1", api.STAGE_TRAIN, "complete")
    assert adopt_run([old_a], naming.spec_hash(spec_a), after_generation=2) is None
    assert adopt_run([old_a], naming.spec_hash(spec_a), after_generation=0)["id"] == "g1"


def test_disallowed_image_is_invalid_spec():
    spec = defaulted_spec(deepspeech={"version": "0.9.3", "image": "evil/trainer:1"})
    d = step(cr(spec))
    assert d.actions == []
    assert d.status["phase"] == api.PHASE_FAILED
    stalled = cond(d.status, "Stalled")
    assert stalled["reason"] == "InvalidSpec" and "spec.deepspeech.image" in stalled["message"]


def test_allowed_image_override_is_used():
    spec = defaulted_spec(deepspeech={"version": "0.9.3", "image": "deepspeech-operator/trainer:custom"})
    assert created(step(cr(spec)))["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "deepspeech-operator/trainer:custom"
    )


def test_stale_progress_of_another_run_is_replaced():
    body = _training()
    body["status"]["progress"] = {"runId": "g0", "epoch": 7, "epochs": 9}
    tj = job(body, "g1", api.STAGE_TRAIN)
    d = step(body, [tj], [pod(tj)])
    assert d.status["progress"] == {"runId": "g1", "epoch": 0, "epochs": 3, "display": "0/3"}
    body["status"]["progress"] = {"runId": "g1", "epoch": 2, "epochs": 3, "step": 40}
    d = step(body, [tj], [pod(tj)])
    assert d.status["progress"]["display"] == "2/3" and d.status["progress"]["step"] == 40


def test_conditions_keep_transition_time_and_carry_generation():
    body = _training()
    tj = job(body, "g1", api.STAGE_TRAIN)
    d1 = step(body, [tj], [pod(tj)])
    b1 = after(body, d1)
    for c in b1["status"]["conditions"]:
        c["lastTransitionTime"] = "2029-12-31T00:00:00Z"
    b1["metadata"]["generation"] = 1
    d2 = decide(b1, [tj], [pod(tj)], CONFIG, "2030-02-02T00:00:00Z")
    assert all(c["lastTransitionTime"] == "2029-12-31T00:00:00Z" for c in d2.status["conditions"])
    assert all(c["observedGeneration"] == 1 for c in d2.status["conditions"])
    assert d2.events == []  # no transition, no event


def test_owner_uid_filter_uses_cr_uid():
    body = _training()
    assert job(body, "g1", api.STAGE_TRAIN)["metadata"]["ownerReferences"][0]["uid"] == UID


# -- preflight passes on its pod's success, without waiting for the Job's Complete condition --------------


def _validating() -> tuple[dict[str, Any], dict[str, Any]]:
    body = after(cr(), step(cr()))
    pj = job(body, "g1", api.STAGE_PREFLIGHT)
    body = after(body, step(body, [pj], [pod(pj, created="2030-01-01T00:00:01Z")]))
    return body, pj


def test_preflight_pod_succeeded_starts_training_before_job_complete():
    body, pj = _validating()
    msg = json.dumps({"kind": "preflight", "ok": True, "rows": 7, "problemCount": 0, "problems": []})
    done = pod(pj, "Succeeded", created="2030-01-01T00:00:01Z", exit_code=0, message=msg)
    d = step(body, [pj], [done])  # the Job is still active: no Complete condition yet
    assert created(d)["metadata"]["name"] == "en-g1-train"
    assert not [a for a in d.actions if isinstance(a, DeleteJob)]  # the preflight Job is finished, kept
    assert d.status["preflight"] == {"runId": "g1", "ok": True, "rows": 7, "problemCount": 0}
    assert cond(d.status, "Validated")["reason"] == "PreflightPassed"
    # Then the Job controller marks the preflight Job Complete: nothing more to do, nothing deleted.
    body = after(body, d)
    tj = job(body, "g1", api.STAGE_TRAIN)
    complete = job(body, "g1", api.STAGE_PREFLIGHT, "complete")
    later = step(body, [complete, tj], [done])
    assert later.actions == [] and "JobCreated" not in reasons(later)


def test_preflight_replacement_pod_counts_not_an_earlier_success():
    body, pj = _validating()
    failed = pod(pj, "Failed", created="2030-01-01T00:00:01Z", exit_code=1)
    retry = pod(pj, "Running", created="2030-01-01T00:00:05Z")
    d = step(body, [job(body, "g1", api.STAGE_PREFLIGHT, failed=1)], [failed, retry])
    assert kinds(d) == [] and d.status["run"]["stage"] == api.STAGE_PREFLIGHT


def test_preflight_success_does_not_overrule_a_failed_or_deleted_job():
    body, _pj = _validating()
    ok = pod(job(body, "g1", api.STAGE_PREFLIGHT), "Succeeded", exit_code=0)
    failed_job = job(body, "g1", api.STAGE_PREFLIGHT, "failed", reason="DeadlineExceeded")
    assert step(body, [failed_job], [ok]).status["phase"] == api.PHASE_FAILED
    deleting = job(body, "g1", api.STAGE_PREFLIGHT, deleting=True)
    assert kinds(step(body, [deleting], [ok])) == []


def test_dry_run_completes_on_preflight_pod_success():
    body = cr(defaulted_spec(dryRun=True))
    body = after(body, step(body))
    pj = job(body, "g1", api.STAGE_PREFLIGHT)
    d = step(body, [pj], [pod(pj, "Succeeded", exit_code=0)])
    assert d.status["phase"] == api.PHASE_SUCCEEDED and kinds(d) == []
    assert d.status["run"]["completionTime"] == NOW


# -- "is this a change?": a decision applied to its own result changes nothing ------------------------------


def _fixpoint_cases() -> list[tuple[str, dict[str, Any], list, list]]:
    unsched = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    train = _training()
    tj = job(train, "g1", api.STAGE_TRAIN)
    validating, pj = _validating()
    return [
        ("preflight running", validating, [pj], [pod(pj, created="2030-01-01T00:00:01Z")]),
        ("preflight pending", validating, [pj], [pod(pj, "Pending", unschedulable=unsched)]),
        ("admitted", train, [tj], [pod(tj, "Pending")]),
        ("unschedulable", train, [tj], [pod(tj, "Pending", unschedulable=unsched)]),
        ("running", train, [tj], [pod(tj)]),
        ("retrying", train, [job(train, "g1", api.STAGE_TRAIN, failed=1)], [pod(tj, "Failed", exit_code=1)]),
        (
            "succeeded",
            train,
            [job(train, "g1", api.STAGE_TRAIN, "complete")],
            [pod(tj, "Succeeded", exit_code=0)],
        ),
        ("failed", train, [job(train, "g1", api.STAGE_TRAIN, "failed")], [pod(tj, "Failed", exit_code=2)]),
    ]


def test_settled_decision_patches_nothing_and_emits_nothing():
    """Once the status of a decision is live, deciding again on the same children must be a no-op: no
    status patch (merge_patch is empty), no Event, no action. This is what keeps a steady state silent."""
    from deepspeech_operator.status import merge_patch

    for label, body, jobs, pods in _fixpoint_cases():
        first = step(body, jobs, pods)
        settled = after(body, first)
        again = decide(settled, jobs, pods, CONFIG, "2031-06-01T00:00:00Z")  # later clock on purpose
        assert merge_patch(settled["status"], again.status) == {}, label
        assert again.events == [], label
        assert again.actions == [], label


def test_the_trainers_own_preflight_message_names_its_first_problem_and_count():
    """Round trip through the trainer's writer (preflight.termination_payload, fitted to 4096 bytes by
    report.fit_message): with more problems than fit, the count is still the real one."""
    from deepspeech_trainer.csvdata import Problem
    from deepspeech_trainer.preflight import termination_payload
    from deepspeech_trainer.report import fit_message
    from deepspeech_trainer.validation import Report

    problems = [
        Problem("s3://corpus/cv/train.csv", n + 2, "csv_syntax", "expected 3 fields, saw 2 " + "x" * 80)
        for n in range(120)
    ]
    report = Report(False, 500, problems, 120, {"csv_syntax": 120}, [], "derived")
    message = fit_message(termination_payload(report)).decode()
    assert len(json.loads(message)["problems"]) < 120  # dropped to fit
    body = after(cr(), step(cr()))
    pj = job(body, "g1", api.STAGE_PREFLIGHT, "failed", reason="PodFailurePolicy")
    d = step(body, [pj], [pod(pj, "Failed", exit_code=65, message=message)])
    assert cond(d.status, "Stalled")["message"].startswith(
        "preflight found 120 problems; first: s3://corpus/cv/train.csv:2 [csv_syntax] expected 3 fields"
    )
