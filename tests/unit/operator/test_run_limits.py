"""Retries and the deadline belong to the run: resumes and re-created Jobs continue them."""

from __future__ import annotations

from deepspeech_operator import api
from deepspeech_operator.reconcile import bound_status, fold_job, job_limits

from .factories import cr, defaulted_spec, job, pod
from .test_reconcile import after, created, step


def _spec(**policy):
    return defaulted_spec(preflight=False, runPolicy={"backoffLimit": 3, **policy})


def test_fold_counts_a_job_once_and_a_recreated_job_again():
    body = cr(_spec())
    j = job(body, "g1", api.STAGE_TRAIN, failed=2)
    run: dict = {}
    fold_job(run, j, "2030-01-01T00:10:00Z")
    fold_job(run, j, "2030-01-01T00:20:00Z")
    assert (run["failures"], run["activeSeconds"]) == (2, 600)
    again = job(body, "g1", api.STAGE_TRAIN, failed=1)
    again["metadata"]["uid"] = "another"
    fold_job(run, again, "2030-01-01T00:01:00Z")
    assert (run["failures"], run["activeSeconds"]) == (3, 660)


def test_limits_left_to_the_run():
    assert job_limits(_spec(activeDeadlineSeconds=3600), {"failures": 2, "activeSeconds": 600}) == (1, 3000)
    assert job_limits(_spec(), {"failures": 5}) == (0, None)


def test_a_resume_continues_the_runs_retries_and_deadline():
    body = cr(_spec(activeDeadlineSeconds=3600))
    body = after(body, step(body))
    tj = job(body, "g1", api.STAGE_TRAIN, failed=2)
    tj["metadata"]["creationTimestamp"] = "2029-12-31T23:50:00Z"  # 10 minutes before NOW
    body["spec"]["suspend"] = True
    body["metadata"]["generation"] = 2
    suspending = step(body, [tj], [pod(tj)])
    assert suspending.status["run"]["failures"] == 2
    body = after(body, suspending)
    body["spec"]["suspend"] = False
    body["metadata"]["generation"] = 3
    resumed = step(body, [], [])
    new_job = created(resumed)
    assert new_job["metadata"]["name"] == "en-g1-train-s1"
    assert new_job["spec"]["backoffLimit"] == 1
    assert resumed.status["run"]["activeSeconds"] == 600
    assert new_job["spec"]["activeDeadlineSeconds"] == 3000
    assert resumed.status["run"]["attempt"] == 3


def test_out_of_time_fails_the_run_instead_of_creating_a_job():
    body = cr(_spec(activeDeadlineSeconds=60))
    body = after(body, step(body))
    body["status"]["run"].update({"activeSeconds": 60, "suspended": True, "jobName": "en-g1-train"})
    d = step(body)
    assert not [a for a in d.actions if type(a).__name__ == "CreateJob"]
    assert d.status["phase"] == api.PHASE_FAILED
    ready = next(c for c in d.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "DeadlineExceeded" and "60 s" in ready["message"]


def test_status_strings_are_cut_to_the_schema():
    status = {
        "conditions": [{"type": "Ready", "reason": "R" * 200, "message": "m" * 5000}],
        "run": {"lastFailureReason": "Unschedulable: " + "x" * 3000},
    }
    out = bound_status(status)
    assert len(out["conditions"][0]["reason"]) == 128 and len(out["conditions"][0]["message"]) == 4096
    assert len(out["run"]["lastFailureReason"]) == 1024 and out["run"]["lastFailureReason"].endswith("...")
