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
    assert resync.lag("d1", mark, resync.Decided("d1", "progress/g1/1/3"), busy=False) is None


def test_behind_when_a_poke_failed_or_kopf_did_not_persist_the_handling():
    failed_poke = resync.marks(_body("children/d0", "children/d0"))
    assert resync.lag("d1", failed_poke, resync.Decided("d0", "children/d0"), False) == ("d1", "children/d0")
    kopf_patch_failed = resync.marks(_body("children/d1", "children/d0"))
    assert resync.lag("d1", kopf_patch_failed, resync.Decided("d1", "children/d1"), False) == (
        "d1",
        "children/d1",
    )


def test_left_to_kopf_when_a_wake_up_is_pending_or_the_cr_is_new_or_busy():
    pending = resync.marks(_body("children/d1", "children/d0"))  # poked; kopf has not called us yet
    assert resync.lag("d1", pending, resync.Decided("d0", "children/d0"), False) is None
    new = resync.marks(_body(None, None))  # kopf's create/resume handler will reconcile it
    assert resync.lag("d1", new, None, False) is None
    behind = resync.marks(_body("children/d0", "children/d0"))
    assert resync.lag("d1", behind, resync.Decided("d0", "children/d0"), busy=True) is None


def test_deleting_crs_and_unreadable_diffbase():
    deleting = resync.marks(_body("x", None, deleting=True))
    assert resync.lag("d1", deleting, resync.Decided("d0", "x"), False) is None
    body = {"metadata": {"annotations": {resync.DIFFBASE_ANNOTATION: "not json"}}}
    assert resync.marks(body).handled is None


def test_poke_value_always_changes_the_annotation():
    assert resync.poke_for("d1", "children/d0") == "children/d1"
    assert resync.poke_for("d1", "children/d1") == "resync/d1"


def test_resync_period_flag():
    assert parse([]).resync_seconds == 60
    assert parse(["--resync-seconds", "0"]).resync_seconds == 0


def test_a_poke_on_its_way_is_not_sent_again():
    behind = resync.marks(_body("children/d0", "children/d0"))
    decided = resync.Decided("d0", "children/d0")
    assert resync.lag("d1", behind, decided, False, sent="children/d1") is None
    assert resync.lag("d1", behind, decided, False, sent=None) == ("d1", "children/d0")  # failed: popped
