"""liveness.py: /healthz fails only while an API call has outlived its bound."""

from __future__ import annotations

import kopf
import pytest
from deepspeech_operator import handlers
from deepspeech_operator.config import OperatorConfig
from deepspeech_operator.liveness import Watchdog, overdue


def test_overdue_names_the_oldest_call_and_counts_the_rest():
    running = {1: ("create Job", 100.0), 2: ("poke", 50.0), 3: ("read Role", 195.0)}
    assert overdue(running, now=200.0, limit=120.0) == "poke has run for 150s, longer than 120s"
    assert overdue(running, now=200.0, limit=60.0) == "poke has run for 150s, longer than 60s (and 1 more)"
    assert overdue(running, now=200.0, limit=160.0) is None
    assert overdue({}, now=200.0, limit=1.0) is None


def test_watchdog_tracks_calls_while_they_run():
    now = [0.0]
    dog = Watchdog(clock=lambda: now[0])
    with dog.track("poke"):
        now[0] = 10.0
        assert dog.stuck(5.0) == "poke has run for 10s, longer than 5s"
    assert dog.stuck(5.0) is None, "a finished call is forgotten"


def test_probe_fails_while_a_call_is_stuck(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(handlers.STATE, "watchdog", Watchdog(clock=lambda: now[0]))
    monkeypatch.setattr(handlers.STATE, "config", OperatorConfig(liveness_stall_seconds=30))
    assert "time" in handlers.probe()
    with handlers.STATE.watchdog.track("create Job"):
        now[0] = 31.0
        with pytest.raises(kopf.PermanentError, match="reconciliation is stuck: create Job has run for 31s"):
            handlers.probe()
    assert "time" in handlers.probe()
