"""status.blocked_status: a run the operator cannot advance on its own reads as Stalled."""

from __future__ import annotations

from deepspeech_operator.status import blocked_status

from tests.unit.operator.test_status_kstatus import kstatus

from .factories import NOW, cr
from .test_reconcile import step


def test_blocked_status_is_stalled_with_the_reason_and_keeps_the_rest():
    decided = step(cr()).status
    out = blocked_status(decided, "NameConflict", "Job speech/en-g1-preflight exists ...", 1, NOW)
    conditions = {c["type"]: c for c in out["conditions"]}
    assert (conditions["Ready"]["status"], conditions["Reconciling"]["status"]) == ("False", "False")
    assert conditions["Stalled"]["status"] == "True" and conditions["Stalled"]["reason"] == "NameConflict"
    assert "en-g1-preflight" in conditions["Stalled"]["message"]
    assert out["run"] == decided["run"] and out["phase"] == decided["phase"]
    assert kstatus({**cr(), "status": out}) == "Failed"
