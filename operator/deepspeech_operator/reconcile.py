"""The reconcile decision as a pure function: CR + observed children -> actions + desired status.

`decide` is called for every event of a DeepSpeechTraining (and, through a poke annotation, for every
event of its Jobs and Pods). It must give the same answer for the same input, so that running it twice,
or after an operator restart, creates nothing twice: names are deterministic, and the run is identified by
the spec hash stored in status and on the Jobs.

The body may be stale: kopf proceeds after its consistency_timeout without the operator's last status
patch. So a new run's id is derived from what status records (observedGeneration + 1), never from the
body's current generation: the stale decision names the same run, and its Jobs, as the one whose patch
it lacks; a Job of that name built for another spec is not adopted (observe.adoption_refusal).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from . import api, defaults, naming, schema
from .accounts import opt_in_refusal, own_account_refusal
from .children import Owner, build_job, image_of, trainer_rbac
from .config import OperatorConfig
from .observe import JobState, JobView, PodsView, job_view, owned_by, pod_alive, pods_view
from .status import (
    append_history,
    condition,
    desired_conditions,
    history_entry,
    merge_conditions,
    preflight_cause,
    progress_display,
    smoke_test_status,
)


@dataclasses.dataclass(frozen=True)
class CreateJob:
    """Create the Job, and first the trainer's objects its pods use (writes.py orders them)."""

    job: dict[str, Any]
    trainer_objects: tuple[dict[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class DeleteJob:
    name: str
    # Foreground: the Job stays (with a deletionTimestamp) until its pods are gone, so "pods stopped" is
    # observable on the Job; pods get SIGTERM and their grace period either way.
    propagation: str


@dataclasses.dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


Action = CreateJob | DeleteJob


@dataclasses.dataclass
class Decision:
    actions: list[Action]
    events: list[Event]
    status: dict[str, Any]


# Passing states that last a moment and leave nothing to act on: shown in the Ready condition, not posted
# as Events (each Event is an API write; a run would post them on every start and resume).
SILENT_REASONS = frozenset({"Admitted", "Completing"})

# Reasons whose transition is worth a Warning event.
WARNING_REASONS = frozenset(
    {
        "Preempted",
        "Retrying",
        "Unschedulable",
        "BackoffLimitExceeded",
        "DeadlineExceeded",
        "PodFailurePolicy",
        "InvalidSpec",
        "PreflightFailed",
        "Failed",
        "JobDeleted",
        "ServiceAccountNotAllowed",
    }
)


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def _name(obj: Mapping[str, Any]) -> str:
    return obj.get("metadata", {}).get("name", "")


def _seconds(timestamp: str) -> float:
    return (
        datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()
    )


def fold_job(run: dict[str, Any], job: Mapping[str, Any], stopped_at: str) -> None:
    """Count a Job of the run that stops (suspended, deleted, or a finished preflight) into the run's
    limits: its failed pods into run.failures, its lifetime into run.activeSeconds; once per Job."""
    meta = job.get("metadata", {})
    counted = meta.get("uid") or _name(job)  # a Job re-created under its name is another Job
    if run.get("countedJob") == counted:
        return
    created = meta.get("creationTimestamp")
    used = max(0, int(_seconds(stopped_at) - _seconds(created))) if created else 0
    run["failures"] = int(run.get("failures") or 0) + job_view(job).failed
    run["activeSeconds"] = int(run.get("activeSeconds") or 0) + used
    run["countedJob"] = counted


def job_limits(spec: Mapping[str, Any], run: Mapping[str, Any]) -> tuple[int, int | None]:
    """(backoffLimit, activeDeadlineSeconds) of the run's next Job: what the run has left.

    Retries and the deadline are the run's (docs/operator.md): a resume or a re-created Job continues
    them instead of starting over. The deadline counts the time the run's Jobs existed, not suspended
    time; a result <= 0 means the run is out of time.
    """
    policy = spec.get("runPolicy", {})
    backoff = max(0, int(policy.get("backoffLimit", 3)) - int(run.get("failures") or 0))
    deadline = policy.get("activeDeadlineSeconds")
    return backoff, (int(deadline) - int(run.get("activeSeconds") or 0)) if deadline else None


def bound_status(status: dict[str, Any]) -> dict[str, Any]:
    """Cut the strings the operator composes to the schema's maxLength (the apiserver would refuse the
    whole status patch otherwise)."""
    for cond in status.get("conditions") or []:
        cond["reason"] = _cut(cond.get("reason", ""), schema.MAX_CONDITION_REASON)
        cond["message"] = _cut(cond.get("message", ""), schema.MAX_CONDITION_MESSAGE)
    run = status.get("run") or {}
    if run.get("lastFailureReason"):
        run["lastFailureReason"] = _cut(str(run["lastFailureReason"]), schema.MAX_FAILURE_REASON)
    return status


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_stage(spec: Mapping[str, Any]) -> str:
    preflight = spec.get("preflight", True) or spec.get("dryRun", False)
    return api.STAGE_PREFLIGHT if preflight else api.STAGE_TRAIN


def _resume_count(name: str) -> int:
    _head, sep, tail = name.rpartition("-s")
    return int(tail) if sep and tail.isdigit() else 0


def adopt_run(
    jobs: Sequence[Mapping[str, Any]], spec_hash: str, after_generation: int
) -> dict[str, Any] | None:
    """Rebuild the run from existing Jobs of this spec hash when status lost it (crash before the status
    patch). Only runs numbered after the one in status (`after_generation`, the number in its id) qualify,
    so flipping a spec back never revives an old, superseded run."""
    candidates = [
        j
        for j in jobs
        if j.get("metadata", {}).get("annotations", {}).get(api.ANNOTATION_SPEC_HASH) == spec_hash
        and naming.run_generation(_labels(j).get(api.LABEL_RUN, "")) > after_generation
    ]
    if not candidates:
        return None
    rid = max((_labels(j)[api.LABEL_RUN] for j in candidates), key=naming.run_generation)
    mine = [j for j in candidates if _labels(j)[api.LABEL_RUN] == rid]
    stage = (
        api.STAGE_TRAIN
        if any(_labels(j).get(api.LABEL_STAGE) == api.STAGE_TRAIN for j in mine)
        else api.STAGE_PREFLIGHT
    )
    resumes = max(_resume_count(_name(j)) for j in mine if _labels(j).get(api.LABEL_STAGE) == stage)
    return {"id": rid, "stage": stage, "resumes": resumes}


def _preflight_result(run_id: str, result: Mapping[str, Any] | None, ok: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"runId": run_id, "ok": ok}
    if result and result.get("kind") == api.STAGE_PREFLIGHT:
        for key in ("rows", "problemCount", "alphabetSize"):
            if isinstance(result.get(key), int):
                out[key] = result[key]
        problems = []
        for problem in (result.get("problems") or [])[:50]:
            if isinstance(problem, Mapping):
                problems.append(
                    {
                        k: problem[k]
                        for k in ("file", "line", "code", "message")
                        if k in problem and problem[k] is not None
                    }
                )
        if problems:
            out["problems"] = problems
    return out


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _failure_message(name: str, view: JobView, pods: PodsView) -> str:
    cause = preflight_cause(pods.result)
    parts = [cause] if cause else []
    parts.append(f"Job {name} failed ({view.reason})")
    if view.message:
        parts.append(view.message)
    if pods.exit_code is not None:
        parts.append(
            f"last exit code {pods.exit_code}" + (f" ({pods.failure_reason})" if pods.failure_reason else "")
        )
    if pods.result and pods.result.get("error"):
        parts.append(str(pods.result["error"])[:500])
    return "; ".join(parts)


class _Run:
    """Mutable working state of one decide() call."""

    def __init__(
        self,
        body: Mapping[str, Any],
        jobs: Sequence[Mapping[str, Any]],
        pods: Sequence[Mapping[str, Any]],
        config: OperatorConfig,
        now: str,
        trainer_accounts: Collection[str] = (),
    ) -> None:
        self.body = body
        self.trainer_accounts = trainer_accounts
        self.meta = body["metadata"]
        self.spec: Mapping[str, Any] = body.get("spec") or {}
        self.old: Mapping[str, Any] = body.get("status") or {}
        self.owner = Owner.of(body)
        self.generation = int(self.meta.get("generation") or 1)
        self.config = config
        self.now = now
        self.jobs = [j for j in jobs if owned_by(j, self.owner.uid)]
        self.jobs_by_name = {_name(j): j for j in self.jobs}
        self.pods = list(pods)
        self.status: dict[str, Any] = copy.deepcopy(dict(self.old))
        self.actions: list[Action] = []
        self.events: list[Event] = []
        self.phase = self.old.get("phase") or api.PHASE_PENDING
        self.reason = "Pending"
        self.message = ""
        self.validated = ("Unknown", "PreflightPending", "")

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(Event("Warning" if warning else "Normal", reason, message))

    def set(self, phase: str, reason: str, message: str = "") -> None:
        self.phase, self.reason, self.message = phase, reason, message

    def set_active(self, phase: str, reason: str, message: str) -> None:
        """Queued or Running, for the stage the run is in: while the CPU preflight is queued or runs, the
        run is Validating."""
        preflight = self.run.get("stage") == api.STAGE_PREFLIGHT
        self.set(api.PHASE_VALIDATING if preflight else phase, reason, message)

    @property
    def run(self) -> dict[str, Any]:
        return self.status.setdefault("run", {})


def new_run_wanted(
    spec_hash: str, old_run: Mapping[str, Any], generation: int, observed_generation: int
) -> bool | None:
    """True: start a new run. False: keep the run. None: keep it and accept `spec_hash` as its spec.

    A new run needs both a different run-defining spec and a generation the operator has not decided on
    yet. The same generation with another hash is the apiserver defaulting the stored spec differently
    (a CRD or operator upgrade added a default): nobody changed the training, so the run, finished or not,
    stays; its new hash is recorded so that a later suspend toggle does not count as a change either.
    """
    if not old_run.get("id"):
        return True
    if spec_hash in (old_run.get("specHash"), old_run.get("acceptedSpecHash")):
        return False
    return True if generation > observed_generation else None


def _start_run_if_needed(r: _Run) -> bool:
    """Switch to a new run when the run-defining spec changed; True when the run is new."""
    h = naming.spec_hash(r.spec)
    old_run = r.old.get("run") or {}
    observed = int(r.old.get("observedGeneration") or 0)
    wanted = new_run_wanted(h, old_run, r.generation, observed)
    if wanted is None:
        r.run["acceptedSpecHash"] = h
        return False
    if not wanted:
        return False
    adopted = adopt_run(r.jobs, h, naming.run_generation(old_run.get("id", "")))
    entry = history_entry(r.old, r.now)
    if entry:
        r.status["history"] = append_history(r.old.get("history"), entry, r.config.history_limit)
        if entry["phase"] == api.HISTORY_SUPERSEDED:
            r.event("RunSuperseded", f"run {entry['id']} replaced by a spec change")
    # Only what status records: a body that kopf hands over without its own last patch (after
    # consistency_timeout) names the same run as the decision that patch came from, so its Jobs are the
    # same objects (a 409 adopts them) instead of a second run next to the first.
    rid = adopted["id"] if adopted else naming.run_id(observed + 1)
    image = image_of(r.spec, r.config)
    r.status["run"] = {
        "id": rid,
        "generation": r.generation,
        "specHash": h,
        "stage": adopted["stage"] if adopted else _first_stage(r.spec),
        "resumes": adopted["resumes"] if adopted else 0,
        "suspended": False,
        "image": image,
    }
    for key in ("preflight", "plan", "checkpoint"):
        r.status.pop(key, None)
    r.status["progress"] = {"runId": rid, "epoch": 0}
    r.phase = api.PHASE_PENDING
    r.event("RunStarted", f"run {rid} started for generation {r.generation} (spec {h})")
    return True


def _cleanup_other_runs(r: _Run) -> None:
    rid = r.run["id"]
    for job in r.jobs:
        if _labels(job).get(api.LABEL_RUN) == rid:
            continue
        view = job_view(job)
        if view.deleting:
            continue
        active = view.state not in (JobState.COMPLETE, JobState.FAILED)
        r.actions.append(DeleteJob(_name(job), "Foreground" if active else "Background"))
        r.event("JobDeleted", f"deleting Job {_name(job)} of an earlier run")


def _validate(r: _Run) -> str:
    """Checks the schema cannot express (operator configuration); the message names the field."""
    image = image_of(r.spec, r.config)
    if r.spec.get("deepspeech", {}).get("image") and not r.config.image_allowed(image):
        return (
            f"spec.deepspeech.image {image!r} does not start with an allowed prefix "
            f"({', '.join(r.config.allowed_image_prefixes)})"
        )
    return own_account_refusal(
        r.owner.namespace, r.spec.get("serviceAccountName"), r.config.own_service_account
    )


def _validated_from_status(r: _Run) -> tuple[str, str, str]:
    if not (r.spec.get("preflight", True) or r.spec.get("dryRun")):
        return ("True", "PreflightSkipped", "spec.preflight is false")
    pre = r.status.get("preflight") or {}
    if pre.get("runId") == r.run["id"] and pre.get("ok") is False:
        return ("False", "PreflightFailed", f"{pre.get('problemCount', 0)} problems found")
    if r.run.get("stage") == api.STAGE_TRAIN or (pre.get("runId") == r.run["id"] and pre.get("ok")):
        rows = pre.get("rows")
        return ("True", "PreflightPassed", f"{rows} rows checked" if rows is not None else "")
    return ("Unknown", "PreflightPending", "")


def _mapping(value: Any) -> Mapping[str, Any]:
    """A termination-message field the trainer wrote as an object, or {} when it wrote something else."""
    return value if isinstance(value, Mapping) else {}


def _finish_success(r: _Run, name: str, view: JobView, pods: PodsView) -> None:
    rid = r.run["id"]
    r.run["completionTime"] = view.completion_time or r.now
    result = _mapping(pods.result) if _mapping(pods.result).get("kind") == api.STAGE_TRAIN else {}
    model = _mapping(result.get("model"))
    # Without a termination message the contract still says where the model is: <output.uri>/<run path>/.
    folder = naming.run_path(r.owner.name, r.owner.uid, rid)
    uri = model.get("uri") or f"{r.spec.get('output', {}).get('uri', '').rstrip('/')}/{folder}/"
    r.status["model"] = {"uri": uri, "runId": rid}
    if isinstance(model.get("files"), list):
        r.status["model"]["files"] = [str(f) for f in model["files"][:32]]
    if isinstance(model.get("smokeTest"), Mapping):
        r.status["model"]["smokeTest"] = smoke_test_status(model["smokeTest"])
    metrics = _mapping(result.get("metrics"))
    clean = {
        k: _number(metrics.get(k)) for k in ("wer", "cer", "loss") if _number(metrics.get(k)) is not None
    }
    if clean:
        r.status["metrics"] = clean
    else:
        r.status.pop("metrics", None)
    checkpoint = result.get("checkpoint")
    if isinstance(checkpoint, Mapping) and checkpoint.get("uri"):
        r.status["checkpoint"] = {k: checkpoint[k] for k in ("uri", "epoch") if k in checkpoint}
    if isinstance(result.get("epochsDone"), int):
        r.status.setdefault("progress", {})["epoch"] = result["epochsDone"]
    early = result.get("stoppedEarly") is True
    if early:
        r.status.setdefault("progress", {})["stoppedEarly"] = True
    trained = f" after early stop at epoch {result.get('epochsDone')}" if early else ""
    r.set(api.PHASE_SUCCEEDED, "Succeeded", f"Job {name} completed{trained}; model at {uri}")
    r.event("ModelExported", f"run {rid} exported its model to {uri}")


def preflight_passed(stage: str, view: JobView | None, pods: PodsView) -> bool:
    """A preflight counts as passed as soon as its newest pod succeeded, without waiting for the Job's
    Complete condition (the Job controller writes it about 0.7 s later). Safe because the preflight is
    CPU-only: the training Job created now cannot double-book a GPU with it. A Job already Failed or
    being deleted is not overruled, and a replacement pod that runs or failed is the newest, so it counts.
    """
    return (
        stage == api.STAGE_PREFLIGHT
        and view is not None
        and view.state == JobState.ACTIVE
        and not view.deleting
        and pods.succeeded
    )


def _effective_state(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> JobState:
    view = job_view(job)
    stage = _labels(job).get(api.LABEL_STAGE, "")
    mine = [p for p in pods if _labels(p).get(api.LABEL_JOB_NAME) == _name(job)]
    if preflight_passed(stage, view, pods_view(mine)):
        return JobState.COMPLETE
    return view.state


@dataclasses.dataclass(frozen=True)
class _StageJob:
    """The Job of the run's current stage (None until created), as observed."""

    stage: str
    name: str
    job: Mapping[str, Any] | None
    view: JobView | None
    pods: PodsView

    @property
    def finished(self) -> bool:
        return self.view is not None and (
            self.view.state == JobState.COMPLETE or preflight_passed(self.stage, self.view, self.pods)
        )

    @property
    def failed(self) -> bool:
        return self.view is not None and self.view.state == JobState.FAILED


def _observe_stage(r: _Run) -> _StageJob:
    run = r.run
    stage = run["stage"]
    name = naming.job_name(r.owner.name, run["id"], stage, int(run.get("resumes") or 0))
    job = r.jobs_by_name.get(name)
    pods = pods_view(p for p in r.pods if _labels(p).get(api.LABEL_JOB_NAME) == name)
    return _StageJob(stage, name, job, job_view(job) if job else None, pods)


def _process_stage(r: _Run) -> None:
    """Advance the run by what its current stage's Job shows: a passed preflight hands over to the
    training stage in the same pass, so a training Job is created without waiting for another event."""
    suspend = bool(r.spec.get("suspend"))
    _count_resume(r, suspend)
    current = _observe_stage(r)
    if current.stage == api.STAGE_PREFLIGHT and current.finished:
        if _finish_preflight(r, current):
            return
        current = _observe_stage(r)
    _stop_leftover_jobs(r, current.name)
    if current.finished:
        assert current.view is not None
        _finish_success(r, current.name, current.view, current.pods)
    elif current.failed:
        _fail_stage(r, current)
    elif suspend:
        _suspend(r, current)
    elif current.job is None:
        _create_stage_job(r, current)
    else:
        assert current.view is not None
        _report_active_job(r, current.name, current.job, current.view, current.pods)


def _count_resume(r: _Run, suspend: bool) -> None:
    run = r.run
    if not suspend and run.get("suspended"):
        run["resumes"] = int(run.get("resumes") or 0) + 1
        run["suspended"] = False
        r.event("Resumed", f"run {run['id']} resumes (resume {run['resumes']})")


def _stop_leftover_jobs(r: _Run, current_name: str) -> None:
    """Other active Jobs of this run (an earlier resume, say) are stopped; a preflight Job whose pod
    already succeeded is finished, only not yet marked Complete by the Job controller."""
    for other in r.jobs:
        if (
            _labels(other).get(api.LABEL_RUN) == r.run["id"]
            and _name(other) != current_name
            and _effective_state(other, r.pods) not in (JobState.COMPLETE, JobState.FAILED)
            and not job_view(other).deleting
        ):
            r.actions.append(DeleteJob(_name(other), "Foreground"))


def _finish_preflight(r: _Run, current: _StageJob) -> bool:
    """Record the passed preflight; True when that ends the run (a dry run), else the run moves on to
    the training stage."""
    assert current.job is not None and current.view is not None
    run = r.run
    completed = current.view.completion_time or r.now
    r.status["preflight"] = _preflight_result(run["id"], current.pods.result, True)
    r.validated = _validated_from_status(r)
    if r.spec.get("dryRun"):
        run["completionTime"] = completed
        r.set(
            api.PHASE_SUCCEEDED,
            "DryRunComplete",
            "preflight passed; the planned command lines are in status.plan",
        )
        return True
    # The preflight's time counts against the run's deadline; its retries were its own.
    fold_job(run, current.job, completed)
    run["failures"] = 0
    run["stage"] = api.STAGE_TRAIN
    return False


def _fail_stage(r: _Run, current: _StageJob) -> None:
    assert current.view is not None
    run, pods = r.run, current.pods
    run["completionTime"] = current.view.completion_time or r.now
    if pods.exit_code is not None:
        run["lastExitCode"] = pods.exit_code
    if pods.failure_reason:
        run["lastFailureReason"] = pods.failure_reason
    message = _failure_message(current.name, current.view, pods)
    if current.stage == api.STAGE_PREFLIGHT:
        r.status["preflight"] = _preflight_result(run["id"], pods.result, False)
        r.validated = ("False", "PreflightFailed", message)
    r.set(api.PHASE_FAILED, current.view.reason, message)


def _suspend(r: _Run, current: _StageJob) -> None:
    run, job = r.run, current.job
    if job is not None:
        if current.view is not None and not current.view.deleting:
            r.actions.append(DeleteJob(current.name, "Foreground"))
        fold_job(run, job, job.get("metadata", {}).get("deletionTimestamp") or r.now)
    if job is not None or run.get("jobName") == current.name:
        run["suspended"] = True
    alive = [p for p in r.pods if pod_alive(p) and _labels(p).get(api.LABEL_RUN) == run["id"]]
    if job is not None or alive:
        r.set_active(api.PHASE_RUNNING, "Suspending", "the trainer checkpoints and its pods stop")
    else:
        r.set(api.PHASE_SUSPENDED, "Suspended", "spec.suspend is true; no pods are running")


def _create_stage_job(r: _Run, current: _StageJob) -> None:
    """Create the stage's Job unless something must come first: earlier pods gone, deadline left,
    the service account allowed."""
    run, name = r.run, current.name
    blocking = [p for p in r.pods if pod_alive(p) and _labels(p).get(api.LABEL_JOB_NAME) != name]
    if blocking:
        r.set(
            api.PHASE_PENDING,
            "WaitingForPreviousPods",
            f"waiting for {len(blocking)} pod(s) of earlier Jobs to stop",
        )
        return
    limits = job_limits(r.spec, run)
    if limits[1] is not None and limits[1] <= 0:
        run["completionTime"] = r.now
        r.set(
            api.PHASE_FAILED,
            "DeadlineExceeded",
            f"the run used its spec.runPolicy.activeDeadlineSeconds "
            f"({r.spec['runPolicy']['activeDeadlineSeconds']} s) in its earlier Jobs",
        )
        return
    refusal = opt_in_refusal(r.owner.namespace, r.spec.get("serviceAccountName"), r.trainer_accounts)
    if refusal:
        # Waits instead of failing: the account may be labelled (or created) after the CR.
        r.set(api.PHASE_PENDING, "ServiceAccountNotAllowed", refusal)
        return
    r.actions.append(
        CreateJob(
            build_job(
                r.owner,
                r.spec,
                run_id=run["id"],
                stage=current.stage,
                resumes=int(run.get("resumes") or 0),
                spec_hash=run["specHash"],
                config=r.config,
                image=run.get("image"),
                limits=limits,
            ),
            # Idempotent: ensures only what is missing, so a restart between the writes is harmless.
            tuple(trainer_rbac(r.owner, r.spec)),
        )
    )
    run["jobName"] = name
    run.setdefault("startTime", r.now)
    run["attempt"] = int(run.get("failures") or 0) + 1
    r.set_active(api.PHASE_QUEUED, "JobCreated", f"created Job {name}")


def _report_active_job(r: _Run, name: str, job: Mapping[str, Any], view: JobView, pods: PodsView) -> None:
    """The phase and reason of a Job that is neither finished nor failed, from what its pods do."""
    run = r.run
    run["jobName"] = name
    # Attempts of the run's stage, across its Jobs (run.failures: the earlier Jobs').
    run["attempt"] = int(run.get("failures") or 0) + view.failed + 1
    if pods.exit_code is not None:
        run["lastExitCode"] = pods.exit_code
    if view.deleting:
        fold_job(run, job, job.get("metadata", {}).get("deletionTimestamp") or r.now)
        r.set(api.PHASE_PENDING, "JobDeleted", f"Job {name} is being deleted; it is re-created once gone")
    elif view.state == JobState.SUSPENDED:
        was_running = (
            r.old.get("phase") == api.PHASE_RUNNING
            or condition(r.old, "Ready").get("reason", "") == "Preempted"
        )
        r.set_active(
            api.PHASE_QUEUED,
            "Preempted" if was_running else "Queued",
            view.message or "the Job is suspended by its queue (Kueue) until admitted",
        )
    elif pods.running:
        r.set_active(api.PHASE_RUNNING, "Running", f"Job {name} is running (attempt {run['attempt']})")
    elif pods.succeeded:
        # The pod is done; the Job controller sets Complete a moment later. Not "waits for its pod".
        r.set_active(api.PHASE_RUNNING, "Completing", f"Job {name}: its pod succeeded, the Job is completing")
    elif pods.unschedulable:
        run["lastFailureReason"] = f"Unschedulable: {pods.unschedulable}"
        r.set_active(api.PHASE_QUEUED, "Unschedulable", pods.unschedulable)
    elif pods.disrupted:
        run["lastFailureReason"] = pods.failure_reason
        r.set_active(
            api.PHASE_QUEUED,
            "Preempted",
            f"pod evicted or preempted ({pods.failure_reason}); resuming from the latest checkpoint",
        )
    elif view.failed > 0:
        run["lastFailureReason"] = pods.failure_reason
        r.set_active(
            api.PHASE_RUNNING,
            "Retrying",
            f"attempt {run['attempt']} after exit code {pods.exit_code}"
            + (f" ({pods.failure_reason})" if pods.failure_reason else ""),
        )
    else:
        r.set_active(api.PHASE_QUEUED, "Admitted", f"Job {name} waits for its pod to start")


def _progress(r: _Run) -> None:
    rid = r.run["id"]
    progress = dict(r.status.get("progress") or {})
    if progress.get("runId") != rid:
        progress = {"runId": rid, "epoch": 0}  # a stale pod of another run wrote it
    progress["epochs"] = progress.get("epochs") or int(defaults.field(r.spec, "training.epochs"))
    display = progress_display(progress)
    if display:
        progress["display"] = display
    r.status["progress"] = progress


def _transition_events(r: _Run) -> None:
    old_reason = condition(r.old, "Ready").get("reason", "")
    if (r.old.get("phase"), old_reason) != (r.phase, r.reason) and r.reason not in SILENT_REASONS:
        message = r.message or f"phase {r.phase}"
        r.event(r.reason, message, warning=r.reason in WARNING_REASONS)


def decide(
    body: Mapping[str, Any],
    jobs: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    config: OperatorConfig,
    now: str,
    trainer_accounts: Collection[str] = (),
) -> Decision:
    """What to do for one DeepSpeechTraining, given its Jobs and Pods (projections, see observe.py) and
    the ServiceAccounts of its namespace opted in for trainers (accounts.py)."""
    r = _Run(body, jobs, pods, config, now, trainer_accounts)
    new_run = _start_run_if_needed(r)
    _cleanup_other_runs(r)
    # Only a new run is checked against the operator's configuration: a run keeps the image it started
    # with, so a later change of the allowed prefixes neither fails it nor orphans its running Job.
    problem = _validate(r) if new_run else ""
    r.validated = _validated_from_status(r)
    if problem:
        r.run.setdefault("completionTime", now)
        r.validated = ("False", "InvalidSpec", problem)
        r.set(api.PHASE_FAILED, "InvalidSpec", problem)
    elif not new_run and r.old.get("phase") in api.TERMINAL_PHASES:
        # A finished run stays finished: its result is in status, even after its Jobs are gone.
        ready = condition(r.old, "Ready")
        r.phase, r.reason, r.message = (
            r.old["phase"],
            ready.get("reason") or r.old["phase"],
            ready.get("message", ""),
        )
        validated = condition(r.old, "Validated")
        if validated:
            r.validated = (validated["status"], validated.get("reason", ""), validated.get("message", ""))
    else:
        _process_stage(r)
    _progress(r)
    _transition_events(r)
    r.status["observedGeneration"] = r.generation
    r.status["phase"] = r.phase
    r.status["conditions"] = merge_conditions(
        r.old.get("conditions"),
        desired_conditions(r.phase, r.reason, r.message, r.generation, r.validated),
        now,
    )
    return Decision(actions=r.actions, events=r.events, status=bound_status(r.status))
