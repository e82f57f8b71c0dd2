"""kopf handlers: the thin imperative shell around reconcile.decide.

Flow: `reconcile` runs only in kopf change handlers of the DeepSpeechTraining (create, resume, spec
update, and a change of the observed-child annotation). kopf serialises handlers per object and waits for a
body that includes its own previous patch, but only up to settings.persistence.consistency_timeout (5 s):
after that it runs the handler on the older body, so a decision can see status without the operator's
last patch. decide() is safe under that: a new run's id comes from status alone (reconcile module doc).
Events of child Jobs and Pods update in-memory indexes and "poke" the parent by writing that annotation,
but only when the digest of what the reconciler reads from the parent's children changed (a scheduler
retry, a Ready flip or a Job counter update changes nothing the reconciler reads, so it wakes nothing).
So all status is written through kopf's patch of the CR, and all child creation happens in one place.

Handlers are async so that kopf runs them on its event loop instead of queueing each watch event for its
small thread pool; the blocking kubernetes-client calls go to a dedicated pool (API_THREADS), several at a
time where they are independent.

A level-triggered resync backs the pokes up (resync.py): one background task, every --resync-seconds,
wakes each CR whose reconciler has not decided on its children's current state (a failed poke, a failed
kopf patch), and writes nothing when every CR is in step. It is a plain task, not a kopf timer: kopf puts
a finalizer on every object that has timers or daemons.

No finalizer is needed: there is no on.delete, no kopf timer or daemon; garbage collection removes
children.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import kopf

from . import api, metrics, naming, resync
from .config import OperatorConfig
from .k8s import Cluster, ForeignObjectError
from .liveness import Watchdog
from .observe import children_digest, project_job, project_pod
from .reconcile import Action, CreateJob, decide
from .status import blocked_status, merge_patch, progress_display
from .timeouts import KopfTimeouts, liveness_stall_seconds
from .writes import EnsureObject, Write, ensured_after, plan_waves

log = logging.getLogger(__name__)

CHILD_LABELS = {api.LABEL_MANAGED_BY: api.OPERATOR_NAME}
RETRY_DELAY = 5.0
# Threads for blocking API calls (the kubernetes client is synchronous). Enough for a burst of new CRs
# (three RBAC creates each) without queueing; k8s.Cluster sizes its connection pool to match.
API_THREADS = 16
# Reconciles deciding and applying at the same time. Without a bound, a burst of 1 000 new CRs starts 1 000
# decisions at once, each holding its built Job manifest while 4 000 API calls queue for the threads
# (memory), and no Job is created before every CR's RBAC is; with it, runs complete in arrival order.
RECONCILE_CONCURRENCY = 24

# kopf's own HTTP session (watches, its patches of CRs, events) gets at most this many connections besides one
# per watch stream. kopf's default connector has no limit: when a burst of handlers finishes at once (about
# 900 of 1 000 CRs within 3 s in bench/operator_scale.py) it opened one TLS connection per concurrent patch,
# ~1 600 sockets kept alive afterwards, and RSS rose by ~450 MiB in that burst (buffers outside the Python heap).
KOPF_CONNECTIONS = 32
# Watch streams per watched namespace (or cluster-wide): DeepSpeechTrainings, Jobs, Pods, opted-in
# ServiceAccounts. Each holds a connection for as long as it runs, so the limit must leave room for all.
WATCH_STREAMS = 4

T = TypeVar("T")

# INDEXES_BY_NAME: kopf passes its indexes to handlers as keyword arguments named after them (dst_jobs, ...),
# but its handler protocols declare only kopf's own keyword arguments, so a handler that names an index does
# not type-check against them; those decorators carry a type: ignore[arg-type] and nothing else does.


class OperatorState:
    """What this process remembers between handler calls; kopf hands it to every handler as `memo.state`."""

    config: OperatorConfig = OperatorConfig()
    cluster: Cluster | None = None
    executor: concurrent.futures.ThreadPoolExecutor | None = None
    # (namespace, CR name) -> the observed-child value the CR carries or was last sent by this process.
    # Bounded by the number of CRs (entries are dropped when a CR is deleted).
    poked: dict[tuple[str, str], str]
    # CR UID -> fingerprint of the trainer ServiceAccount/Role/RoleBinding this process last ensured (created,
    # adopted or patched back): later runs and resumes with the same objects skip those round trips, a
    # changed spec.serviceAccountName ensures them again. Dropped on CR deletion.
    rbac_ready: dict[str, str]
    # (namespace, Job name) of Jobs this process created and has not yet seen an event of (see
    # creation_echo). Each entry lives from the create call to the Job's first watch event.
    created_jobs: set[tuple[str, str]]
    inflight: asyncio.Semaphore
    watchdog: Watchdog  # the API calls running in the pool, for /healthz
    # (namespace, CR name) -> what its last successful reconcile decided on (resync.Decided).
    decided: dict[tuple[str, str], resync.Decided]
    # (namespace, CR name) of reconciles waiting for a slot or running.
    reconciling: set[tuple[str, str]]
    # (namespace, CR name) -> what the previous resync tick found behind (resync.lag).
    lagging: dict[tuple[str, str], tuple[str, str | None]]
    resync_task: asyncio.Task[None] | None = None

    def __init__(self) -> None:
        self.poked = {}
        self.rbac_ready = {}
        self.created_jobs = set()
        self.inflight = asyncio.Semaphore(RECONCILE_CONCURRENCY)
        self.watchdog = Watchdog()
        self.decided = {}
        self.reconciling = set()
        self.lagging = {}


def configure(config: OperatorConfig, cluster: Cluster) -> OperatorState:
    """The state to pass to kopf.run as `memo=kopf.Memo(state=...)`."""
    state = OperatorState()
    state.config = config
    state.cluster = cluster
    state.executor = concurrent.futures.ThreadPoolExecutor(API_THREADS, thread_name_prefix="api")
    return state


def _state(memo: kopf.Memo) -> OperatorState:
    state = memo.get("state")
    assert isinstance(state, OperatorState), "kopf.run was not given memo=kopf.Memo(state=configure(...))"
    return state


async def _call(state: OperatorState, fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking API call in the API thread pool, watched from the moment a thread starts it."""

    def tracked() -> T:
        with state.watchdog.track(getattr(fn, "__name__", "API call")):
            return fn(*args)

    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(state.executor, tracked)


async def _wake(state: OperatorState, cluster: Cluster, namespace: str, name: str, value: str) -> None:
    """Write the observed-child annotation. A failure (after the call's own retries) leaves the CR owed
    a wake-up until one is delivered or it is reconciled (liveness.py)."""
    try:
        await _call(state, cluster.poke, namespace, name, value)
    except Exception:
        state.watchdog.owe(f"{namespace}/{name}")
        raise
    state.watchdog.settle(f"{namespace}/{name}")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@kopf.on.startup()  # type: ignore[arg-type]  # takes indexes by name (see INDEXES_BY_NAME)
async def startup(
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    dst_jobs: kopf.Index,
    dst_pods: kopf.Index,
    dst_trainings: kopf.Index,
    **_: Any,
) -> None:
    state = _state(memo)
    # Own storage keys, so two kopf-based operators never share handler state on one object.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=api.KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=api.KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = api.KOPF_FINALIZER
    settings.posting.reporting_component = api.OPERATOR_NAME
    settings.posting.reporting_instance = os.environ.get("HOSTNAME", api.OPERATOR_NAME)
    # kopf posts its own per-object log lines as Events from this level up. At INFO that is a "Handler
    # succeeded" Event per reconcile, one API write each that tells a user nothing; the transitions are
    # posted explicitly (decide()'s events), and kopf's warnings and errors (a failing handler) still are.
    settings.posting.level = logging.WARNING
    # Bounded requests, and watch streams the server ends regularly and kopf drops when silent for longer:
    # a connection that a NAT or load balancer silently dropped costs at most one timeout (timeouts.py).
    timeouts = KopfTimeouts.of(state.config)
    settings.networking.request_timeout = timeouts.request_timeout
    settings.networking.connect_timeout = timeouts.connect_timeout
    settings.watching.server_timeout = timeouts.watch_server_timeout
    settings.watching.client_timeout = timeouts.watch_client_timeout
    settings.watching.inactivity_timeout = timeouts.watch_inactivity_timeout
    # Server-side filtering: only our Jobs and Pods are ever listed or watched.
    settings.watching.label_selectors["batch", "v1", "jobs"] = api.MANAGED_BY_SELECTOR
    settings.watching.label_selectors["", "v1", "pods"] = api.MANAGED_BY_SELECTOR
    settings.watching.label_selectors["", "v1", "serviceaccounts"] = api.TRAINER_ACCOUNT_SELECTOR
    settings.peering.standalone = True  # one replica, Recreate: no peering objects, no peering RBAC
    settings.scanning.disabled = True  # no CRD/namespace watching: the CRD is installed before us
    if state.config.resync_seconds > 0:
        state.resync_task = asyncio.create_task(
            _resync_loop(state, float(state.config.resync_seconds), dst_jobs, dst_pods, dst_trainings)
        )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    state = _state(memo)
    if state.resync_task is not None:
        state.resync_task.cancel()
        state.resync_task = None


def kopf_connection_limit(namespaces: tuple[str, ...]) -> int:
    """Connections of kopf's session: every watch stream plus KOPF_CONNECTIONS for requests."""
    return WATCH_STREAMS * max(1, len(namespaces)) + KOPF_CONNECTIONS


@kopf.on.login()
async def login(
    logger: kopf.Logger, settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any
) -> kopf.AiohttpSession | None:
    """kopf's default login (the kubernetes client's configuration), with a bounded connection pool."""
    info = kopf.login_via_client(logger=logger, settings=settings)
    if info is None:
        return None
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=kopf_connection_limit(_state(memo).config.namespaces), ssl=info.as_ssl_context()
        ),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
        aiohttp_session=session,
    )


@kopf.on.probe(id="reconciles")
def probe(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """/healthz: fails (HTTP 500) while an API call outlives every bound its timeouts set (liveness.py)."""
    state = _state(memo)
    stuck = state.watchdog.stuck(liveness_stall_seconds(state.config))
    if stuck:
        raise kopf.PermanentError(f"reconciliation is stuck: {stuck}")
    return {"time": _now()}


# -- children: index and poke ---------------------------------------------------------------------------


@kopf.index("batch", "v1", "jobs", labels=CHILD_LABELS)
async def dst_jobs(
    namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    return {(namespace, labels.get(api.LABEL_TRAINING)): project_job(body)}


@kopf.index("", "v1", "pods", labels=CHILD_LABELS)
async def dst_pods(
    namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    return {(namespace, labels.get(api.LABEL_TRAINING)): project_pod(body)}


# -- ServiceAccounts opted in for trainers (accounts.py) ------------------------------------------------


@kopf.index("", "v1", "serviceaccounts", labels={api.LABEL_TRAINER_ACCOUNT: "true"})
async def dst_accounts(namespace: str | None, name: str, **_: Any) -> dict[Any, Any]:
    return {namespace: name}


@kopf.index(api.GROUP, api.VERSION, api.PLURAL)
async def dst_account_users(
    namespace: str | None, name: str, spec: kopf.Spec, **_: Any
) -> dict[Any, Any] | None:
    account = spec.get("serviceAccountName")
    return {(namespace, account): name} if account else None


@kopf.on.event("", "v1", "serviceaccounts", labels={api.LABEL_TRAINER_ACCOUNT: "true"})  # type: ignore[arg-type]  # takes an index by name (see INDEXES_BY_NAME)
async def account_event(
    namespace: str | None,
    name: str,
    meta: kopf.Meta,
    memo: kopf.Memo,
    dst_account_users: kopf.Index,
    **_: Any,
) -> None:
    """An account was opted in (or out): wake the CRs that name it, so a waiting run goes on."""
    state = _state(memo)
    cluster = state.cluster
    if cluster is None or namespace is None:
        return
    value = f"account/{name}/{meta.get('resourceVersion')}"
    for user in dst_account_users.get((namespace, name), []):
        await _wake(state, cluster, namespace, user, value)


@kopf.index(api.GROUP, api.VERSION, api.PLURAL)
async def dst_trainings(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): resync.marks(body)}


def _digest(dst_jobs: kopf.Index, dst_pods: kopf.Index, namespace: str, name: str) -> str:
    key = (namespace, naming.label_value(name))
    return children_digest(dst_jobs.get(key, []), dst_pods.get(key, []))


async def resync_once(
    state: OperatorState, dst_jobs: kopf.Index, dst_pods: kopf.Index, dst_trainings: kopf.Index
) -> int:
    """One resync tick: poke the CRs found behind on this tick and the previous one; returns how many."""
    cluster = state.cluster
    if cluster is None:
        return 0
    due: list[tuple[str, str, str]] = []
    seen = set()
    for key, marks in list(dst_trainings.items()):
        for mark in marks:
            namespace, name = key
            seen.add(key)
            digest = _digest(dst_jobs, dst_pods, namespace, name)
            behind = resync.lag(
                digest, mark, state.decided.get(key), key in state.reconciling, state.poked.get(key)
            )
            if behind is None or state.lagging.get(key) != behind:
                state.lagging.pop(key, None)
                if behind is not None:
                    state.lagging[key] = behind
                continue
            del state.lagging[key]
            value = resync.poke_for(digest, mark.carried)
            state.poked[key] = value
            due.append((namespace, name, value))
            log.debug(
                "resync %s/%s: children %s, %s, %s", namespace, name, digest, state.decided.get(key), mark
            )
    for gone in state.lagging.keys() - seen:
        del state.lagging[gone]
    results = await asyncio.gather(*(_wake(state, cluster, *item) for item in due), return_exceptions=True)
    for (namespace, name, value), result in zip(due, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("resync of %s/%s failed: %s", namespace, name, result)
            if state.poked.get((namespace, name)) == value:
                state.poked.pop((namespace, name), None)
        else:
            log.info("resync: %s/%s had not seen its children's latest state; woken", namespace, name)
            metrics.RESYNC_POKES.inc()
    return len(due)


async def _resync_loop(
    state: OperatorState,
    interval: float,
    dst_jobs: kopf.Index,
    dst_pods: kopf.Index,
    dst_trainings: kopf.Index,
) -> None:
    while True:
        await asyncio.sleep(interval)  # a period, not a synchronisation: the resync is level-triggered
        try:
            await resync_once(state, dst_jobs, dst_pods, dst_trainings)
        except Exception:
            log.exception("resync tick failed; the next one retries")


def _parent_of(body: Mapping[str, Any]) -> str | None:
    meta = body.get("metadata", {})
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == api.KIND and ref.get("controller"):
            return ref.get("name")
    return (meta.get("annotations") or {}).get(api.ANNOTATION_TRAINING)


def creation_echo(body: Mapping[str, Any], created_by_us: bool) -> bool:
    """The first event of a Job this process just created, before the Job controller wrote anything: the
    reconcile that created it already decided on it, so waking that reconciler again would only cost a CR
    patch and kopf's diff-base patch. Its pod's first event (or any status change) wakes it as usual."""
    return created_by_us and not (body.get("status") or {})


def poke_value(digest: str, carried: str | None) -> str | None:
    """The observed-child value to write on the parent, or None when it already carries (or was already
    sent) this digest: then its reconciler has seen, or is about to see, these very children."""
    value = f"children/{digest}"
    return None if carried == value else value


async def _poke(state: OperatorState, body: kopf.Body, dst_jobs: kopf.Index, dst_pods: kopf.Index) -> None:
    """Wake the parent's reconciler when what it reads from its children changed. kopf updates the
    indexes before it calls event handlers, so the digest includes this event."""
    parent = _parent_of(body)
    cluster = state.cluster
    if not parent or cluster is None:
        return
    namespace = body["metadata"]["namespace"]
    key = (namespace, naming.label_value(parent))
    digest = children_digest(dst_jobs.get(key, []), dst_pods.get(key, []))
    previous = state.poked.get((namespace, parent))
    value = poke_value(digest, previous)
    if value is None:
        return
    # Recorded before the await, so concurrent events of the same CR's children (handled on this one
    # event loop) do not send the same value twice; undone when the write fails so the next event retries.
    state.poked[(namespace, parent)] = value
    try:
        await _wake(state, cluster, namespace, parent, value)
    except Exception:
        if state.poked.get((namespace, parent)) == value:
            state.poked.pop((namespace, parent), None)
        raise


@kopf.on.event("batch", "v1", "jobs", labels=CHILD_LABELS)  # type: ignore[arg-type]  # takes indexes by name (see INDEXES_BY_NAME)
async def job_event(
    body: kopf.Body, memo: kopf.Memo, dst_jobs: kopf.Index, dst_pods: kopf.Index, **_: Any
) -> None:
    state = _state(memo)
    key = (body["metadata"].get("namespace", ""), body["metadata"].get("name", ""))
    created_by_us = key in state.created_jobs
    state.created_jobs.discard(key)
    if not creation_echo(body, created_by_us):
        await _poke(state, body, dst_jobs, dst_pods)


@kopf.on.event("", "v1", "pods", labels=CHILD_LABELS)  # type: ignore[arg-type]  # takes indexes by name (see INDEXES_BY_NAME)
async def pod_event(
    body: kopf.Body, memo: kopf.Memo, dst_jobs: kopf.Index, dst_pods: kopf.Index, **_: Any
) -> None:
    await _poke(_state(memo), body, dst_jobs, dst_pods)


# -- the DeepSpeechTraining ------------------------------------------------------------------------------


async def _write(state: OperatorState, write: Write, owner_uid: str, namespace: str) -> None:
    cluster = state.cluster
    assert cluster is not None, "configure() was not called"
    if isinstance(write, EnsureObject):
        await _call(state, cluster.ensure, dict(write.obj), owner_uid)
    elif isinstance(write, CreateJob):
        outcome = await _call(state, cluster.create_or_adopt, write.job, owner_uid)
        if outcome == "created":
            state.created_jobs.add((namespace, write.job["metadata"]["name"]))
            metrics.JOBS_CREATED.labels(stage=write.job["metadata"]["labels"][api.LABEL_STAGE]).inc()
    else:
        await _call(state, cluster.delete_job, namespace, write.name, write.propagation)


async def _apply(state: OperatorState, actions: list[Action], owner_uid: str, body: kopf.Body) -> None:
    """Send the decision's writes in the waves writes.plan_waves orders them in."""
    namespace = body["metadata"]["namespace"]
    ensured = state.rbac_ready.get(owner_uid)
    for wave in plan_waves(actions, ensured):
        await asyncio.gather(*(_write(state, w, owner_uid, namespace) for w in wave))
    after = ensured_after(actions, ensured)
    if after is not None:
        state.rbac_ready[owner_uid] = after


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


async def reconcile(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    dst_jobs: kopf.Index,
    dst_pods: kopf.Index,
    dst_accounts: kopf.Index | None = None,
) -> None:
    """One reconcile; raises on API errors (callers decide how to retry). Returns None always."""
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return  # garbage collection removes the children; nothing to add
    rv = meta.get("resourceVersion")
    if getattr(memo, "reconciled", None) == rv:
        return  # another handler of this same kopf cycle already did it
    cr_key = (meta["namespace"], meta["name"])
    state = _state(memo)
    state.reconciling.add(cr_key)
    try:
        await _reconcile(state, body, patch, memo, dst_jobs, dst_pods, dst_accounts)
    finally:
        state.reconciling.discard(cr_key)


async def _reconcile(
    state: OperatorState,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    dst_jobs: kopf.Index,
    dst_pods: kopf.Index,
    dst_accounts: kopf.Index | None,
) -> None:
    meta = body["metadata"]
    rv = meta.get("resourceVersion")
    async with state.inflight:
        started = time.monotonic()
        key = (meta["namespace"], naming.label_value(meta["name"]))
        raw = dict(body)
        # Read the indexes only now: waiting for a slot may have taken a while.
        jobs, pods = list(dst_jobs.get(key, [])), list(dst_pods.get(key, []))
        accounts = (
            frozenset(dst_accounts.get(meta["namespace"], [])) if dst_accounts is not None else frozenset()
        )
        now = _now()
        decision = decide(raw, jobs, pods, state.config, now, accounts)
        old_status = raw.get("status") or {}
        try:
            await _apply(state, decision.actions, meta["uid"], body)
        except ForeignObjectError as exc:
            # Visible in status (Stalled, naming the object) until the object is gone; kopf retries.
            stalled = blocked_status(
                decision.status, "NameConflict", str(exc)[:1024], int(meta.get("generation") or 1), now
            )
            if merge_patch(old_status, stalled):
                kopf.warn(body, reason="NameConflict", message=str(exc)[:1024])
            for field, value in merge_patch(old_status, stalled).items():
                patch.status[field] = value
            raise
        state.decided[(meta["namespace"], meta["name"])] = resync.Decided(
            children_digest(jobs, pods), (meta.get("annotations") or {}).get(api.ANNOTATION_OBSERVED)
        )
    # Only differing leaves: an unchanged decision patches nothing (kopf then sends no status request).
    for field, value in merge_patch(old_status, decision.status).items():
        patch.status[field] = value
    # decide() emits transition events only when phase or Ready reason differ from the live status.
    for event in decision.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])
        metrics.TRANSITIONS.labels(reason=event.reason).inc()
    _time_to_running(old_status, decision.status)
    metrics.PHASES.set(meta["namespace"], meta["name"], decision.status.get("phase"))
    metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
    memo.reconciled = rv
    state.watchdog.settle(f"{meta['namespace']}/{meta['name']}")  # whatever wake-up it was owed, it is awake


def progress_poke(status: Mapping[str, Any]) -> str | None:
    """The observed-child value that makes the reconciler refresh the Epoch display, or None when the
    display is current. Keyed by the progress itself, so stale CR events repeat the same value."""
    progress = status.get("progress") or {}
    display = progress_display(progress)
    if not progress or progress.get("display") == display:
        return None
    return f"progress/{progress.get('runId')}/{display}"


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
async def training_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Bookkeeping only. on.event also sees stale bodies (kopf runs it before its own patches arrive), so
    it never decides anything; it pokes when the trainer's progress needs a new Epoch display."""
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    state = _state(memo)
    if type == "DELETED":
        metrics.PHASES.set(meta["namespace"], meta["name"], None)
        state.poked.pop(key, None)
        state.decided.pop(key, None)
        state.reconciling.discard(key)
        state.lagging.pop(key, None)
        state.rbac_ready.pop(meta.get("uid", ""), None)
        state.watchdog.settle(f"{meta['namespace']}/{meta['name']}")
        return
    if key not in state.poked:
        # First sight (start-up listing or a new CR): what it carries is what a poke would compare with.
        carried = (meta.get("annotations") or {}).get(api.ANNOTATION_OBSERVED)
        if carried:
            state.poked[key] = carried
    value = progress_poke(body.get("status") or {})
    cluster = state.cluster
    if value is None or cluster is None or state.poked.get(key) == value:
        return
    state.poked[key] = value
    try:
        await _wake(state, cluster, meta["namespace"], meta["name"], value)
    except Exception:
        if state.poked.get(key) == value:
            state.poked.pop(key, None)
        raise


@kopf.on.create(api.GROUP, api.VERSION, api.PLURAL)
@kopf.on.resume(api.GROUP, api.VERSION, api.PLURAL)
@kopf.on.update(api.GROUP, api.VERSION, api.PLURAL, field="spec")
@kopf.on.field(api.GROUP, api.VERSION, api.PLURAL, field=("metadata", "annotations", api.ANNOTATION_OBSERVED))  # type: ignore[arg-type]  # takes indexes by name (see INDEXES_BY_NAME)
async def training_changed(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    dst_jobs: kopf.Index,
    dst_pods: kopf.Index,
    dst_accounts: kopf.Index,
    **_: Any,
) -> None:
    """The reconciler. kopf waits (up to consistency_timeout) for a body with its own last patch and
    retries the handler with backoff when it raises."""
    try:
        await reconcile(body, patch, memo, dst_jobs, dst_pods, dst_accounts)
    except ForeignObjectError as exc:
        metrics.RECONCILE_ERRORS.inc()
        raise kopf.TemporaryError(str(exc), delay=30) from exc
    except Exception as exc:
        metrics.RECONCILE_ERRORS.inc()
        raise kopf.TemporaryError(f"reconcile failed: {exc}", delay=RETRY_DELAY) from exc
