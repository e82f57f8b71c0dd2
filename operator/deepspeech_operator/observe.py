"""Pure reading of child Jobs and Pods: what state they are in, and what the trainer reported.

The handlers keep slim projections (project_job / project_pod) in kopf indexes; everything else here
works on those projections, so the unit tests build them by hand.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from . import api, contract

# Job status conditions the reconciler reads (job_view); the rest (SuccessCriteriaMet, FailureTarget) are
# interim states that change nothing until Complete/Failed follow.
_JOB_CONDITIONS = ("Complete", "Failed", "Suspended")
# Pod conditions the reconciler reads (pods_view): PodScheduled only while it is not True (Unschedulable),
# DisruptionTarget. Ready/ContainersReady/Initialized and PodScheduled=True flip on every start.
_POD_CONDITIONS = ("PodScheduled", "DisruptionTarget")
_COND_KEYS = ("type", "status", "reason", "message")
_TERMINATED_KEYS = ("exitCode", "reason", "message")


def _conditions(
    status: Mapping[str, Any], types: tuple[str, ...], keys: tuple[str, ...]
) -> list[dict[str, Any]]:
    return [
        {k: cond[k] for k in keys if cond.get(k) is not None}
        for cond in status.get("conditions") or []
        if cond.get("type") in types
    ]


def project_job(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a Job the reconciler reads (kept in memory per Job).

    Only what `decide` reads, so that a change of anything else (active/ready counters, start time,
    interim conditions) leaves the projection, and with it children_digest, unchanged: such a change
    cannot change the parent's decision and must not wake its reconciler.
    """
    meta = body.get("metadata", {})
    status = body.get("status") or {}
    projected_status: dict[str, Any] = {}
    if status.get("failed"):
        projected_status["failed"] = int(status["failed"])
    if status.get("completionTime"):
        projected_status["completionTime"] = status["completionTime"]
    conditions = _conditions(status, _JOB_CONDITIONS, (*_COND_KEYS, "lastTransitionTime"))
    if conditions:
        projected_status["conditions"] = conditions
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "labels": dict(meta.get("labels") or {}),
            "annotations": {
                k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(api.GROUP)
            },
            "ownerReferences": [
                {k: ref[k] for k in ("kind", "name", "uid", "controller") if k in ref}
                for ref in meta.get("ownerReferences") or []
            ],
            "creationTimestamp": meta.get("creationTimestamp"),
            "deletionTimestamp": meta.get("deletionTimestamp"),
        },
        "spec": {"suspend": bool((body.get("spec") or {}).get("suspend"))},
        "status": projected_status,
    }


def _container_status(cs: Mapping[str, Any]) -> dict[str, Any] | None:
    """Only terminated states (exit code, reason, termination message): running/waiting details and
    readiness change while nothing the reconciler reads does."""
    out: dict[str, Any] = {}
    for key in ("state", "lastState"):
        terminated = (cs.get(key) or {}).get("terminated")
        if terminated:
            out[key] = {"terminated": {k: terminated[k] for k in _TERMINATED_KEYS if k in terminated}}
    return {"name": cs.get("name"), **out} if out else None


def project_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a Pod the reconciler reads (see project_job for why nothing else is kept).

    Not kept: the node (binding), condition timestamps (the scheduler rewrites PodScheduled on retries),
    PodScheduled=True, Ready and ContainersReady, IPs, image ids, running/waiting container states.
    """
    meta = body.get("metadata", {})
    status = body.get("status") or {}
    projected_status: dict[str, Any] = {
        k: status[k] for k in ("phase", "reason", "startTime") if status.get(k) is not None
    }
    conditions = [
        c
        for c in _conditions(status, _POD_CONDITIONS, _COND_KEYS)
        if not (c["type"] == "PodScheduled" and c.get("status") == "True")
    ]
    if conditions:
        projected_status["conditions"] = conditions
    containers = [
        projected
        for cs in status.get("containerStatuses") or []
        if cs.get("name") == contract.CONTAINER_NAME and (projected := _container_status(cs))
    ]
    if containers:
        projected_status["containerStatuses"] = containers
    labels = meta.get("labels") or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "labels": {
                k: v
                for k, v in labels.items()
                if k.startswith(api.GROUP) or k in (api.LABEL_JOB_NAME, api.LABEL_MANAGED_BY)
            },
            "creationTimestamp": meta.get("creationTimestamp"),
            "deletionTimestamp": meta.get("deletionTimestamp"),
        },
        # No spec: nodeName is set on binding, which the reconciler learns from the phase anyway.
        "spec": {},
        "status": projected_status,
    }


def children_digest(jobs: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]) -> str:
    """A short hash of everything `decide` reads from one CR's children (their projections).

    Equal digests mean equal inputs, so the parent's decision cannot differ: the child watchers poke the
    parent only when its digest changed. Independent of the order of the index.
    """
    items = sorted(
        [json.dumps(["Job", j], sort_keys=True, separators=(",", ":")) for j in jobs]
        + [json.dumps(["Pod", p], sort_keys=True, separators=(",", ":")) for p in pods]
    )
    blob = "\n".join(items)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """True when `uid` is the object's controller: only then may the operator adopt or delete it."""
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("controller") and ref.get("uid") == uid for ref in refs)


def adoption_refusal(existing: Mapping[str, Any], desired: Mapping[str, Any], owner_uid: str) -> str | None:
    """Why an object already holding `desired`'s name is not ours to take; None when it is.

    Ours means: this CR is its controller and, for a Job, it was built for the same spec (the spec-hash
    annotation). Two decisions can name the same run for different specs (one made on a body that lacked
    the other's status patch); the second must not mistake the first's Job for its own.
    """
    meta = desired.get("metadata", {})
    where = f"{desired.get('kind')} {meta.get('namespace')}/{meta.get('name')}"
    if not owned_by(existing, owner_uid):
        return (
            f"{where} exists and is not controlled by this DeepSpeechTraining "
            "(left to its owner or the garbage collector)"
        )
    want = (meta.get("annotations") or {}).get(api.ANNOTATION_SPEC_HASH)
    have = (existing.get("metadata", {}).get("annotations") or {}).get(api.ANNOTATION_SPEC_HASH)
    if want and have != want:
        return f"{where} exists for another spec of this run (spec hash {have}, this one {want})"
    return None


class JobState(enum.Enum):
    ACTIVE = "Active"
    SUSPENDED = "Suspended"  # spec.suspend set by Kueue (not admitted, or preempted)
    COMPLETE = "Complete"
    FAILED = "Failed"


@dataclasses.dataclass(frozen=True)
class JobView:
    state: JobState
    reason: str = ""
    message: str = ""
    failed: int = 0
    deleting: bool = False
    completion_time: str | None = None


def _condition(obj: Mapping[str, Any], ctype: str) -> Mapping[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == ctype and cond.get("status") == "True":
            return cond
    return None


def job_view(job: Mapping[str, Any]) -> JobView:
    """State of a Job. Only the terminal Complete/Failed conditions count as finished: FailureTarget and
    SuccessCriteriaMet are set while pods still terminate."""
    status = job.get("status", {})
    failed_pods = int(status.get("failed") or 0)
    deleting = bool(job.get("metadata", {}).get("deletionTimestamp"))
    done = _condition(job, "Complete")
    if done:
        return JobView(
            JobState.COMPLETE,
            "Completed",
            done.get("message", ""),
            completion_time=status.get("completionTime") or done.get("lastTransitionTime"),
            failed=failed_pods,
            deleting=deleting,
        )
    failed = _condition(job, "Failed")
    if failed:
        return JobView(
            JobState.FAILED,
            failed.get("reason") or "Failed",
            failed.get("message", ""),
            completion_time=failed.get("lastTransitionTime"),
            failed=failed_pods,
            deleting=deleting,
        )
    suspended = _condition(job, "Suspended")
    if suspended or job.get("spec", {}).get("suspend"):
        return JobView(
            JobState.SUSPENDED, "Suspended", (suspended or {}).get("message", ""), failed_pods, deleting
        )
    return JobView(JobState.ACTIVE, failed=failed_pods, deleting=deleting)


def pod_alive(pod: Mapping[str, Any]) -> bool:
    """A pod that still holds (or may soon hold) a node's resources."""
    return pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


def _trainer_terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        if cs.get("name") == contract.CONTAINER_NAME:
            return (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
    return None


def termination_message(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The trainer's JSON termination message (docs/contract.md), or None when absent or not JSON."""
    terminated = _trainer_terminated(pod)
    if not terminated or not terminated.get("message"):
        return None
    try:
        message = json.loads(terminated["message"])
    except ValueError:
        return None  # FallbackToLogsOnError put a log tail there
    return message if isinstance(message, dict) else None


@dataclasses.dataclass(frozen=True)
class PodsView:
    running: bool = False
    unschedulable: str = ""  # the scheduler's message
    disrupted: bool = False  # newest finished pod was evicted/preempted
    exit_code: int | None = None  # of the newest counted failure
    failure_reason: str = ""
    result: dict[str, Any] | None = None  # termination message of the newest pod that has one
    running_since: str | None = None
    succeeded: bool = False  # the newest pod ran to completion (phase Succeeded: every container exit 0)


def _pod_condition(pod: Mapping[str, Any], ctype: str) -> Mapping[str, Any] | None:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def _created(pod: Mapping[str, Any]) -> str:
    return pod.get("metadata", {}).get("creationTimestamp") or ""


def _log_tail(text: str, limit: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def pods_view(pods: Iterable[Mapping[str, Any]]) -> PodsView:
    """Summary of one Job's pods, newest first."""
    ordered = sorted(pods, key=_created, reverse=True)
    running = False
    running_since = None
    unschedulable = ""
    for pod in ordered:
        status = pod.get("status", {})
        if status.get("phase") == "Running" and not pod.get("metadata", {}).get("deletionTimestamp"):
            running = True
            running_since = running_since or status.get("startTime")
        scheduled = _pod_condition(pod, "PodScheduled")
        if (
            status.get("phase") == "Pending"
            and scheduled
            and scheduled.get("status") == "False"
            and scheduled.get("reason") == "Unschedulable"
            and not unschedulable
        ):
            unschedulable = scheduled.get("message") or "no node fits the pod"
    disrupted = False
    exit_code = None
    reason = ""
    for pod in ordered:
        if pod.get("status", {}).get("phase") != "Failed":
            continue
        target = _pod_condition(pod, "DisruptionTarget")
        if target and target.get("status") == "True":
            disrupted = True
            reason = target.get("reason") or "Evicted"
            break
        terminated = _trainer_terminated(pod) or {}
        exit_code = terminated.get("exitCode")
        reason = terminated.get("reason") or pod.get("status", {}).get("reason") or "Error"
        if reason == "Error" and terminated.get("message") and termination_message(pod) is None:
            reason = f"Error: {_log_tail(terminated['message'])}"
        break
    result = None
    for pod in ordered:
        result = termination_message(pod)
        if result is not None:
            break
    # The newest pod decides: an older success cannot be followed by a replacement (completions = 1), and
    # a replacement that is still running or failed means the Job has not succeeded through it.
    succeeded = bool(ordered) and ordered[0].get("status", {}).get("phase") == "Succeeded"
    return PodsView(
        succeeded=succeeded,
        running=running,
        unschedulable=unschedulable,
        disrupted=disrupted,
        exit_code=exit_code,
        failure_reason=reason,
        result=result,
        running_since=running_since,
    )
