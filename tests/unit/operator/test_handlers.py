"""The thin shell's pure bits: finding a child's parent, applying actions through a fake cluster."""

from __future__ import annotations

import pytest
from deepspeech_operator import api, handlers
from deepspeech_operator.k8s import ForeignObjectError
from deepspeech_operator.reconcile import CreateJob, DeleteJob, EnsureObjects

from .factories import UID, cr, job


class FakeCluster:
    def __init__(self, foreign: bool = False) -> None:
        self.calls: list[tuple] = []
        self.foreign = foreign

    def create_or_adopt(self, obj, owner_uid):
        self.calls.append(("create", obj.get("kind"), obj["metadata"]["name"], owner_uid))
        if self.foreign:
            raise ForeignObjectError("taken")
        return "created"

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


def test_apply_and_poke(monkeypatch):
    fake = FakeCluster()
    monkeypatch.setattr(handlers.STATE, "cluster", fake)
    body = cr()
    j = job(body, "g1", "train")
    handlers._apply(
        [
            EnsureObjects([{"kind": "Role", "metadata": {"name": "r"}}]),
            CreateJob(j),
            DeleteJob("old", "Foreground"),
        ],
        UID,
        body,
    )
    assert fake.calls == [
        ("create", "Role", "r", UID),
        ("create", None, "en-g1-train", UID),
        ("delete", "speech", "old", "Foreground"),
    ]
    j["metadata"]["resourceVersion"] = "42"
    handlers._poke("Job", j)
    assert fake.calls[-1] == ("poke", "speech", "en", "Job/en-g1-train/42")


def test_apply_foreign_raises(monkeypatch):
    monkeypatch.setattr(handlers.STATE, "cluster", FakeCluster(foreign=True))
    with pytest.raises(ForeignObjectError):
        handlers._apply([EnsureObjects([{"kind": "Role", "metadata": {"name": "r"}}])], UID, cr())
