"""kopf handlers: the thin imperative shell around reconcile.decide.

Flow: `reconcile` runs only in kopf change handlers of the DeepSpeechTraining (create, resume, spec
update, and a change of the observed-child annotation). kopf serialises handlers per object and runs change
handlers only once the body includes its own previous patch, so a reconcile never decides on stale status.
Events of child Jobs and Pods update in-memory indexes and "poke" the parent by writing that annotation.
So all status is written through kopf's patch of the CR, and all child creation happens in one place.

No finalizer is needed: there is no on.delete, no timer, no daemon; garbage collection removes children.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import kopf

from . import api, metrics, naming
from .config import OperatorConfig
from .k8s import Cluster, ForeignObjectError
from .observe import project_job, project_pod
from .reconcile import CreateJob, DeleteJob, EnsureObjects, decide
from .status import merge_patch, progress_display

log = logging.getLogger(__name__)

CHILD_LABELS = {api.LABEL_MANAGED_BY: api.OPERATOR_NAME}
RETRY_DELAY = 5.0


class _State:
    config: OperatorConfig = OperatorConfig()
    cluster: Cluster | None = None


STATE = _State()


def configure(config: OperatorConfig, cluster: Cluster) -> None:
    STATE.config = config
    STATE.cluster = cluster


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Own storage keys, so two kopf-based operators never share handler state on one object.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=api.KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=api.KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = api.KOPF_FINALIZER
    settings.posting.reporting_component = api.OPERATOR_NAME
    settings.posting.reporting_instance = os.environ.get("HOSTNAME", api.OPERATOR_NAME)
    settings.posting.level = logging.INFO
    # Reconnect watch streams that a load balancer silenced; the client waits longer than the server.
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    # Server-side filtering: only our Jobs and Pods are ever listed or watched.
    settings.watching.label_selectors["batch", "v1", "jobs"] = api.MANAGED_BY_SELECTOR
    settings.watching.label_selectors["", "v1", "pods"] = api.MANAGED_BY_SELECTOR
    settings.peering.standalone = True  # one replica, Recreate: no peering objects, no peering RBAC
    settings.scanning.disabled = True  # no CRD/namespace watching: the CRD is installed before us


@kopf.on.probe(id="reconciles")
def probe(**_: Any) -> dict[str, Any]:
    return {"time": _now()}


# -- children: index and poke ---------------------------------------------------------------------------


@kopf.index("batch", "v1", "jobs", labels=CHILD_LABELS)
def dst_jobs(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, labels.get(api.LABEL_TRAINING)): project_job(body)}


@kopf.index("", "v1", "pods", labels=CHILD_LABELS)
def dst_pods(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, labels.get(api.LABEL_TRAINING)): project_pod(body)}


def _parent_of(body: Mapping[str, Any]) -> str | None:
    meta = body.get("metadata", {})
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == api.KIND and ref.get("controller"):
            return ref.get("name")
    return (meta.get("annotations") or {}).get(api.ANNOTATION_TRAINING)


def _poke(kind: str, body: kopf.Body) -> None:
    parent = _parent_of(body)
    if not parent or STATE.cluster is None:
        return
    meta = body.get("metadata", {})
    value = f"{kind}/{meta.get('name')}/{meta.get('resourceVersion')}"
    STATE.cluster.poke(meta["namespace"], parent, value)


@kopf.on.event("batch", "v1", "jobs", labels=CHILD_LABELS)
def job_event(body: kopf.Body, **_: Any) -> None:
    _poke("Job", body)


@kopf.on.event("", "v1", "pods", labels=CHILD_LABELS)
def pod_event(body: kopf.Body, **_: Any) -> None:
    _poke("Pod", body)


# -- the DeepSpeechTraining ------------------------------------------------------------------------------


def _apply(actions: list[Any], owner_uid: str, body: kopf.Body) -> None:
    cluster = STATE.cluster
    assert cluster is not None, "configure() was not called"
    namespace = body["metadata"]["namespace"]
    for action in actions:
        if isinstance(action, EnsureObjects):
            for obj in action.objects:
                cluster.create_or_adopt(obj, owner_uid)
        elif isinstance(action, CreateJob):
            outcome = cluster.create_or_adopt(action.job, owner_uid)
            if outcome == "created":
                metrics.JOBS_CREATED.labels(stage=action.job["metadata"]["labels"][api.LABEL_STAGE]).inc()
        elif isinstance(action, DeleteJob):
            cluster.delete_job(namespace, action.name, action.propagation)


def _time_to_running(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    run = new.get("run") or {}
    if (
        new.get("phase") == api.PHASE_RUNNING
        and old.get("phase") != api.PHASE_RUNNING
        and run.get("stage") == api.STAGE_TRAIN
        and run.get("startTime")
    ):
        started = datetime.datetime.strptime(run["startTime"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.UTC
        )
        metrics.TIME_TO_RUNNING.observe((datetime.datetime.now(datetime.UTC) - started).total_seconds())


def reconcile(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, dst_jobs: kopf.Index, dst_pods: kopf.Index
) -> None:
    """One reconcile; raises on API errors (callers decide how to retry). Returns None always."""
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return  # garbage collection removes the children; nothing to add
    rv = meta.get("resourceVersion")
    if getattr(memo, "reconciled", None) == rv:
        return  # another handler of this same kopf cycle already did it
    started = time.monotonic()
    key = (meta["namespace"], naming.label_value(meta["name"]))
    raw = dict(body)
    decision = decide(raw, list(dst_jobs.get(key, [])), list(dst_pods.get(key, [])), STATE.config, _now())
    try:
        _apply(decision.actions, meta["uid"], body)
    except ForeignObjectError as exc:
        kopf.warn(body, reason="NameConflict", message=str(exc))
        raise
    old_status = raw.get("status") or {}
    for field, value in merge_patch(old_status, decision.status).items():
        patch.status[field] = value
    for event in decision.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])
        metrics.TRANSITIONS.labels(reason=event.reason).inc()
    _time_to_running(old_status, decision.status)
    metrics.PHASES.set(meta["namespace"], meta["name"], decision.status.get("phase"))
    metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
    memo.reconciled = rv


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
def training_event(type: str | None, body: kopf.Body, **_: Any) -> None:
    """Bookkeeping only. on.event also sees stale bodies (kopf runs it before its own patches arrive), so
    it never decides anything; it pokes when the trainer's progress needs a new Epoch display."""
    meta = body["metadata"]
    if type == "DELETED":
        metrics.PHASES.set(meta["namespace"], meta["name"], None)
        return
    progress = (body.get("status") or {}).get("progress") or {}
    if progress and progress.get("display") != progress_display(progress) and STATE.cluster is not None:
        STATE.cluster.poke(meta["namespace"], meta["name"], f"progress/{meta.get('resourceVersion')}")


@kopf.on.create(api.GROUP, api.VERSION, api.PLURAL)
@kopf.on.resume(api.GROUP, api.VERSION, api.PLURAL)
@kopf.on.update(api.GROUP, api.VERSION, api.PLURAL, field="spec")
@kopf.on.field(api.GROUP, api.VERSION, api.PLURAL, field=("metadata", "annotations", api.ANNOTATION_OBSERVED))
def training_changed(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, dst_jobs: kopf.Index, dst_pods: kopf.Index, **_: Any
) -> None:
    """The reconciler. Change handlers run only on a consistent body (kopf waits for its own last patch),
    and kopf retries them with backoff when they raise."""
    try:
        reconcile(body, patch, memo, dst_jobs, dst_pods)
    except ForeignObjectError as exc:
        metrics.RECONCILE_ERRORS.inc()
        raise kopf.TemporaryError(str(exc), delay=30) from exc
    except Exception as exc:
        metrics.RECONCILE_ERRORS.inc()
        raise kopf.TemporaryError(f"reconcile failed: {exc}", delay=RETRY_DELAY) from exc
