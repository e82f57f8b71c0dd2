"""The thin shell's pure bits: finding a child's parent, applying actions through a fake cluster,
when a child event pokes its parent."""

from __future__ import annotations

import asyncio

import kopf
import pytest
from deepspeech_operator import api, handlers, naming
from deepspeech_operator.k8s import ForeignObjectError
from deepspeech_operator.observe import children_digest
from deepspeech_operator.reconcile import CreateJob, DeleteJob
from deepspeech_operator.writes import EnsureObject, plan_waves, rbac_fingerprint

from .factories import UID, cr, job, pod


class FakeCluster:
    def __init__(self, foreign: bool = False) -> None:
        self.calls: list[tuple] = []
        self.foreign = foreign

    def create_or_adopt(self, obj, owner_uid):
        self.calls.append(("create", obj.get("kind"), obj["metadata"]["name"], owner_uid))
        if self.foreign:
            raise ForeignObjectError("taken")
        return "created"

    ensure = create_or_adopt  # the trainer's objects: create, adopt or patch back (k8s.Cluster.ensure)

    def delete_job(self, namespace, name, propagation):
        self.calls.append(("delete", namespace, name, propagation))

    def poke(self, namespace, name, value):
        self.calls.append(("poke", namespace, name, value))


def test_parent_of_job_and_pod():
    j = job(cr(), "g1", "train")
    assert handlers._parent_of(j) == "en"
    pod_body = {
        "metadata": {
            "ownerReferences": [{"kind": "Job", "name": "x", "controller": True}],
            "annotations": {api.ANNOTATION_TRAINING: "en"},
        }
    }
    assert handlers._parent_of(pod_body) == "en"
    assert handlers._parent_of({"metadata": {}}) is None


@pytest.fixture
def state():
    """A fresh shell state with a fake cluster (poke/RBAC bookkeeping is per process)."""
    fresh = handlers.OperatorState()
    fresh.cluster = FakeCluster()
    return fresh


@pytest.fixture
def memo(state):
    """What kopf hands each handler: a memo carrying the process's state (kopf.run(memo=...))."""
    return kopf.Memo(state=state)


def test_apply_creates_rbac_then_job_and_deletes(state):
    body = cr()
    j = job(body, "g1", "train")
    asyncio.run(
        handlers._apply(
            state,
            [CreateJob(j, ({"kind": "Role", "metadata": {"name": "r"}},)), DeleteJob("old", "Foreground")],
            UID,
            body,
        )
    )
    assert state.cluster.calls == [
        ("create", "Role", "r", UID),
        ("create", None, "en-g1-train", UID),
        ("delete", "speech", "old", "Foreground"),
    ]


RBAC = tuple(
    {"kind": k, "metadata": {"name": "en-trainer"}} for k in ("ServiceAccount", "Role", "RoleBinding")
)


def test_role_binding_only_after_its_role_and_with_the_job():
    """The escalation check reads the bound Role: the RoleBinding must not race its Role."""
    start = CreateJob(job(cr(), "g1", "train"), RBAC)
    assert plan_waves([start], None) == [
        (EnsureObject(RBAC[0]), EnsureObject(RBAC[1])),
        (EnsureObject(RBAC[2]), start),
    ]


def test_role_binding_waits_for_its_role_on_the_wire(state):
    body = cr()
    asyncio.run(handlers._apply(state, [CreateJob(job(body, "g1", "train"), RBAC)], UID, body))
    order = [c[1] or "Job" for c in state.cluster.calls]
    assert set(order[:2]) == {"ServiceAccount", "Role"}
    assert set(order[2:]) == {"RoleBinding", "Job"}


def test_rbac_is_created_once_per_cr_and_again_after_its_deletion(state, memo):
    body = cr()
    asyncio.run(handlers._apply(state, [CreateJob(job(body, "g1", "train"), RBAC)], UID, body))
    asyncio.run(handlers._apply(state, [CreateJob(job(body, "g2", "train"), RBAC)], UID, body))  # a later run
    assert [c[1] or "Job" for c in state.cluster.calls][4:] == ["Job"]
    asyncio.run(handlers.training_event(type="DELETED", body=body, memo=memo))
    asyncio.run(handlers._apply(state, [CreateJob(job(body, "g3", "train"), RBAC)], UID, body))
    assert len(state.cluster.calls) == 9


def test_a_changed_set_of_trainer_objects_is_ensured_again():
    start = CreateJob(job(cr(), "g1", "train"), RBAC)
    other = CreateJob(start.job, RBAC[1:])
    assert plan_waves([start], None)[0] != (start,)
    assert plan_waves([start], rbac_fingerprint(RBAC)) == [(start,)]
    assert len(plan_waves([other], rbac_fingerprint(RBAC))) == 2


def _index(body, *objs):
    return {("speech", naming.label_value(body["metadata"]["name"])): list(objs)}


def test_child_events_poke_only_when_the_digest_changes(state, memo):
    body = cr()
    j = job(body, "g1", "train")
    jobs = _index(body, j)
    pending = pod(j, "Pending", unschedulable="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
    asyncio.run(handlers.job_event(memo=memo, body=j, dst_jobs=jobs, dst_pods=_index(body)))
    asyncio.run(
        handlers.job_event(memo=memo, body=j, dst_jobs=jobs, dst_pods=_index(body))
    )  # same facts again
    asyncio.run(
        handlers.pod_event(
            memo=memo,
            body=pending
            | {
                "metadata": {
                    **pending["metadata"],
                    "namespace": "speech",
                    "annotations": {api.ANNOTATION_TRAINING: "en"},
                }
            },
            dst_jobs=jobs,
            dst_pods=_index(body, pending),
        )
    )
    pokes = [c for c in state.cluster.calls if c[0] == "poke"]
    assert pokes == [
        ("poke", "speech", "en", f"children/{children_digest([j], [])}"),
        ("poke", "speech", "en", f"children/{children_digest([j], [pending])}"),
    ]


def test_poke_value_skips_what_the_parent_carries():
    assert handlers.poke_value("abc", None) == "children/abc"
    assert handlers.poke_value("abc", "children/abc") is None
    assert handlers.poke_value("abc", "children/old") == "children/abc"
    assert handlers.poke_value("abc", "progress/g1/1/3") == "children/abc"


def test_first_sight_of_a_cr_seeds_what_it_carries(state, memo):
    body = cr()
    j = job(body, "g1", "train")
    body["metadata"]["annotations"] = {api.ANNOTATION_OBSERVED: f"children/{children_digest([j], [])}"}
    asyncio.run(handlers.training_event(type=None, body=body, memo=memo))
    asyncio.run(handlers.job_event(memo=memo, body=j, dst_jobs=_index(body, j), dst_pods=_index(body)))
    assert state.cluster.calls == []  # after a restart: the parent already reflects these children


def test_failed_poke_is_retried_by_the_next_event(state, memo):
    body = cr()
    j = job(body, "g1", "train")

    def broken(namespace, name, value):
        raise RuntimeError("apiserver down")

    state.cluster.poke = broken
    with pytest.raises(RuntimeError):
        asyncio.run(handlers.job_event(memo=memo, body=j, dst_jobs=_index(body, j), dst_pods=_index(body)))
    assert ("speech", "en") not in state.poked
    # Owed until delivered: with no further event, liveness reports it once it is older than its bound.
    assert state.watchdog.stuck(-1) == "wake-up of speech/en undelivered for 0s, longer than -1s"
    state.cluster.poke = FakeCluster().poke
    asyncio.run(handlers.job_event(memo=memo, body=j, dst_jobs=_index(body, j), dst_pods=_index(body)))
    assert state.watchdog.stuck(-1) is None


def test_progress_poke_only_when_the_display_is_stale():
    assert handlers.progress_poke({}) is None
    assert (
        handlers.progress_poke({"progress": {"runId": "g1", "epoch": 1, "epochs": 3, "display": "1/3"}})
        is None
    )
    assert handlers.progress_poke(
        {"progress": {"runId": "g1", "epoch": 2, "epochs": 3, "display": "1/3"}}
    ) == ("progress/g1/2/3")


def test_apply_foreign_raises(state):
    state.cluster.foreign = True
    with pytest.raises(ForeignObjectError):
        asyncio.run(handlers._apply(state, [CreateJob(job(cr(), "g1", "train"))], UID, cr()))


def test_the_first_event_of_a_job_this_process_created_wakes_nobody(state, memo):
    body = cr()
    j = job(body, "g1", "train")
    j.pop("status", None)
    asyncio.run(handlers._apply(state, [CreateJob(j)], UID, body))
    asyncio.run(handlers.job_event(memo=memo, body=j, dst_jobs=_index(body, j), dst_pods=_index(body)))
    assert [c for c in state.cluster.calls if c[0] == "poke"] == []
    # Anything after it is news to the reconciler: the Job controller's first status, say.
    started = j | {"status": {"failed": 1}}
    asyncio.run(
        handlers.job_event(memo=memo, body=started, dst_jobs=_index(body, started), dst_pods=_index(body))
    )
    assert [c[0] for c in state.cluster.calls if c[0] == "poke"] == ["poke"]


def test_a_job_this_process_did_not_create_still_wakes_its_parent(state, memo):
    body = cr()
    j = job(body, "g1", "train")
    j.pop("status", None)
    asyncio.run(handlers.job_event(memo=memo, body=j, dst_jobs=_index(body, j), dst_pods=_index(body)))
    assert [c[0] for c in state.cluster.calls] == ["poke"]
