"""liveness.py: /healthz fails only while an API call has outlived its bound."""

from __future__ import annotations

import kopf
import pytest
from deepspeech_operator import handlers
from deepspeech_operator.config import OperatorConfig
from deepspeech_operator.liveness import Watchdog, overdue


def test_overdue_names_the_oldest_and_counts_the_rest():
    waiting = {1: ("create Job", 100.0), 2: ("poke", 50.0), 3: ("read Role", 195.0)}
    assert overdue(waiting, now=200.0, limit=120.0) == "poke for 150s, longer than 120s"
    assert overdue(waiting, now=200.0, limit=60.0) == "poke for 150s, longer than 60s (and 1 more)"
    assert overdue(waiting, now=200.0, limit=160.0) is None
    assert overdue({}, now=200.0, limit=1.0) is None


def test_watchdog_tracks_calls_while_they_run():
    now = [0.0]
    dog = Watchdog(clock=lambda: now[0])
    with dog.track("poke"):
        now[0] = 10.0
        assert dog.stuck(5.0) == "API call poke running for 10s, longer than 5s"
    assert dog.stuck(5.0) is None, "a finished call is forgotten"


def test_an_owed_wake_up_counts_from_its_first_loss_until_settled():
    now = [0.0]
    dog = Watchdog(clock=lambda: now[0])
    dog.owe("speech/en")
    now[0] = 4.0
    dog.owe("speech/en")  # lost again: still owed since the first loss
    now[0] = 6.0
    assert dog.stuck(5.0) == "wake-up of speech/en undelivered for 6s, longer than 5s"
    dog.settle("speech/en")
    assert dog.stuck(5.0) is None


def test_probe_fails_while_a_call_is_stuck(monkeypatch):
    now = [0.0]
    state = handlers.OperatorState()
    state.watchdog = Watchdog(clock=lambda: now[0])
    state.config = OperatorConfig(liveness_stall_seconds=30)
    memo = kopf.Memo(state=state)
    assert "time" in handlers.probe(memo=memo)
    with state.watchdog.track("create_or_adopt"):
        now[0] = 31.0
        with pytest.raises(kopf.PermanentError, match="stuck: API call create_or_adopt running for 31s"):
            handlers.probe(memo=memo)
    assert "time" in handlers.probe(memo=memo)
