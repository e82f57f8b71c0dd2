"""resync: when a CR's reconciler is behind its children, and what wakes it."""

from __future__ import annotations

import json

from deepspeech_operator import api, resync
from deepspeech_operator.config import parse


def _body(carried: str | None, handled: str | None, deleting: bool = False) -> dict:
    essence = {"spec": {}, "metadata": {"annotations": {api.ANNOTATION_OBSERVED: handled} if handled else {}}}
    annotations = {resync.DIFFBASE_ANNOTATION: json.dumps(essence) + "\n"}
    if carried:
        annotations[api.ANNOTATION_OBSERVED] = carried
    meta = {"name": "en", "annotations": annotations}
    if deleting:
        meta["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    return {"metadata": meta}


def test_in_step_when_decided_on_these_children_and_kopf_handled_the_carried_value():
    mark = resync.marks(_body("progress/g1/1/3", "progress/g1/1/3"))
    assert mark == resync.Marks("progress/g1/1/3", "progress/g1/1/3")
    assert resync.lag("d1", mark, decided="d1") is None


def test_behind_when_a_poke_failed_or_kopf_did_not_handle_it():
    failed_poke = resync.marks(_body("children/d0", "children/d0"))
    assert resync.lag("d1", failed_poke, decided="d0") == ("d1", "children/d0")
    unhandled = resync.marks(_body("children/d1", "children/d0"))
    assert resync.lag("d1", unhandled, decided="d1") == ("d1", "children/d1")
    assert resync.lag("d1", resync.marks(_body(None, None)), decided=None) == ("d1", None)


def test_deleting_crs_and_unreadable_diffbase():
    assert resync.lag("d1", resync.marks(_body("x", None, deleting=True)), decided=None) is None
    body = {"metadata": {"annotations": {resync.DIFFBASE_ANNOTATION: "not json"}}}
    assert resync.marks(body).handled is None


def test_poke_value_always_changes_the_annotation():
    assert resync.poke_for("d1", "children/d0") == "children/d1"
    assert resync.poke_for("d1", "children/d1") == "resync/d1"


def test_resync_period_flag():
    assert parse([]).resync_seconds == 60
    assert parse(["--resync-seconds", "0"]).resync_seconds == 0
