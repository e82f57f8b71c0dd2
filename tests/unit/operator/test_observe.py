from __future__ import annotations

from deepspeech_operator import api
from deepspeech_operator.observe import (
    JobState,
    children_digest,
    job_view,
    owned_by,
    pod_alive,
    pods_view,
    project_job,
    project_pod,
    termination_message,
)

from .factories import UID, cr, job, pod


def test_projections_keep_what_the_reconciler_reads():
    raw = {
        "metadata": {
            "name": "j",
            "namespace": "n",
            "uid": "u",
            "labels": {"a": "b"},
            "annotations": {api.ANNOTATION_SPEC_HASH: "h", "other/x": "y"},
            "ownerReferences": [{"uid": UID, "controller": True}],
            "resourceVersion": "9",
        },
        "spec": {"suspend": True, "template": {"big": "x"}},
        "status": {"active": 1},
    }
    p = project_job(raw)
    assert p["metadata"]["annotations"] == {api.ANNOTATION_SPEC_HASH: "h"}
    # status.active is not read by the reconciler, so it is not kept (see test_digest_* below).
    assert p["spec"] == {"suspend": True} and p["status"] == {}
    assert owned_by(p, UID) and not owned_by(p, "other")
    pp = project_pod({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": []}})
    # Binding (nodeName) changes nothing the reconciler reads: not kept, so it wakes nothing.
    assert pp["spec"] == {} and pp["status"] == {}


def test_job_states():
    body = cr()
    assert job_view(job(body, "g1", "train")).state == JobState.ACTIVE
    assert job_view(job(body, "g1", "train", "complete")).state == JobState.COMPLETE
    failed = job_view(job(body, "g1", "train", "failed", reason="DeadlineExceeded"))
    assert (failed.state, failed.reason) == (JobState.FAILED, "DeadlineExceeded")
    assert job_view(job(body, "g1", "train", suspended=True)).state == JobState.SUSPENDED
    assert job_view(job(body, "g1", "train", deleting=True)).deleting
    # Interim conditions are not terminal.
    interim = job(body, "g1", "train")
    interim["status"]["conditions"] = [{"type": "FailureTarget", "status": "True"}]
    assert job_view(interim).state == JobState.ACTIVE
    bare_suspend = job(body, "g1", "train")
    bare_suspend["spec"]["suspend"] = True
    assert job_view(bare_suspend).state == JobState.SUSPENDED


def test_termination_message_parsing():
    j = job(cr(), "g1", "train")
    assert termination_message(pod(j)) is None
    assert termination_message(pod(j, "Failed", exit_code=1, message="not json")) is None
    assert termination_message(pod(j, "Failed", exit_code=1, message="[1]")) is None
    assert termination_message(pod(j, "Succeeded", exit_code=0, message='{"ok": true}')) == {"ok": True}
    last_state = pod(j)
    last_state["status"]["containerStatuses"] = [
        {"name": "trainer", "state": {"running": {}}, "lastState": {"terminated": {"message": '{"a": 1}'}}}
    ]
    assert termination_message(last_state) == {"a": 1}
    other = pod(j)
    other["status"]["containerStatuses"] = [{"name": "sidecar", "state": {"terminated": {"message": "{}"}}}]
    assert termination_message(other) is None


def test_pods_view_newest_first():
    j = job(cr(), "g1", "train")
    old_fail = pod(j, "Failed", created="2030-01-01T00:00:01Z", exit_code=137, reason="OOMKilled")
    new_evict = pod(j, "Failed", created="2030-01-01T00:00:05Z", exit_code=143, disrupted=True)
    v = pods_view([old_fail, new_evict])
    assert v.disrupted and v.failure_reason == "EvictionByEvictionAPI" and v.exit_code is None
    v2 = pods_view(
        [pod(j, "Failed", created="2030-01-01T00:00:09Z", exit_code=137, reason="OOMKilled"), new_evict]
    )
    assert (v2.disrupted, v2.exit_code, v2.failure_reason) == (False, 137, "OOMKilled")
    assert pods_view([]).running is False
    unsched = pods_view([pod(j, "Pending", unschedulable="0/3 nodes are available")])
    assert unsched.unschedulable == "0/3 nodes are available"
    terminating = pod(j)
    terminating["metadata"]["deletionTimestamp"] = "x"
    assert pods_view([terminating]).running is False
    no_status = pod(j, "Failed")
    assert pods_view([no_status]).failure_reason == "Error"


def test_long_log_tail_is_cut():
    j = job(cr(), "g1", "train")
    v = pods_view([pod(j, "Failed", exit_code=1, message="x" * 1000)])
    assert v.failure_reason.startswith("Error: ...") and len(v.failure_reason) < 320


def test_pod_alive():
    j = job(cr(), "g1", "train")
    assert pod_alive(pod(j, "Running")) and pod_alive(pod(j, "Pending"))
    assert not pod_alive(pod(j, "Succeeded")) and not pod_alive(pod(j, "Failed"))


def _raw_pod(**status):
    return {
        "metadata": {
            "name": "en-g1-train-abc",
            "namespace": "speech",
            "labels": {api.LABEL_JOB_NAME: "en-g1-train", api.LABEL_RUN: "g1", "controller-uid": "x"},
            "creationTimestamp": "2030-01-01T00:00:01Z",
            "resourceVersion": "1",
        },
        "spec": {"nodeName": None, "containers": [{"name": "trainer"}]},
        "status": {"phase": "Pending", "qosClass": "Guaranteed", **status},
    }


def _unschedulable(probe: str, message: str = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."):
    return [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": probe,
            "lastTransitionTime": probe,
        }
    ]


def test_digest_ignores_what_cannot_change_a_decision():
    """Scheduler retries rewrite the PodScheduled timestamps; Ready flips, IPs and Job counters change
    nothing decide() reads: same digest, so no poke."""
    first = project_pod(_raw_pod(conditions=_unschedulable("2030-01-01T00:00:02Z")))
    retried = _raw_pod(conditions=_unschedulable("2030-01-01T00:05:00Z"))
    retried["metadata"]["resourceVersion"] = "7"
    assert children_digest([], [first]) == children_digest([], [project_pod(retried)])
    running = _raw_pod(phase="Running", startTime="2030-01-01T00:00:03Z")
    ready = _raw_pod(
        phase="Running",
        startTime="2030-01-01T00:00:03Z",
        podIP="10.0.0.9",
        conditions=[{"type": "Ready", "status": "True", "lastTransitionTime": "2030-01-01T00:00:04Z"}],
        containerStatuses=[{"name": "trainer", "ready": True, "state": {"running": {"startedAt": "x"}}}],
    )
    assert children_digest([], [project_pod(running)]) == children_digest([], [project_pod(ready)])
    bound = _raw_pod(conditions=[{"type": "PodScheduled", "status": "True", "lastTransitionTime": "t"}])
    bound["spec"]["nodeName"] = "cpu-node-0"
    assert children_digest([], [project_pod(_raw_pod())]) == children_digest([], [project_pod(bound)])
    job_raw = {"metadata": {"name": "j"}, "status": {"active": 1, "ready": 0, "startTime": "t"}}
    job_ready = {"metadata": {"name": "j"}, "status": {"active": 1, "ready": 1, "startTime": "t"}}
    assert children_digest([project_job(job_raw)], []) == children_digest([project_job(job_ready)], [])


def test_digest_changes_with_what_decide_reads():
    pending = project_pod(_raw_pod())
    unschedulable = project_pod(_raw_pod(conditions=_unschedulable("t")))
    other_message = project_pod(_raw_pod(conditions=_unschedulable("t", "0/3 nodes: 1 Too many pods.")))
    running = project_pod(_raw_pod(phase="Running"))
    finished = project_pod(
        _raw_pod(
            phase="Failed",
            containerStatuses=[
                {
                    "name": "trainer",
                    "state": {"terminated": {"exitCode": 65, "reason": "Error", "message": "{}"}},
                }
            ],
        )
    )
    digests = {children_digest([], [p]) for p in (pending, unschedulable, other_message, running, finished)}
    assert len(digests) == 5
    assert children_digest([], []) != children_digest([], [pending])
    assert finished["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 65
    # Order of the index does not matter.
    assert children_digest([], [pending, running]) == children_digest([], [running, pending])


def test_newest_pod_succeeded():
    j = job(cr(), "g1", "preflight")
    ok = pod(j, "Succeeded", created="2030-01-01T00:00:05Z", exit_code=0)
    failed = pod(j, "Failed", created="2030-01-01T00:00:01Z", exit_code=1)
    retry = pod(j, "Running", created="2030-01-01T00:00:09Z")
    assert pods_view([failed, ok]).succeeded
    assert not pods_view([failed, ok, retry]).succeeded
    assert not pods_view([failed]).succeeded and not pods_view([]).succeeded
