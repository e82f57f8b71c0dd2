"""timeouts.py: the one policy behind every API request's timeout and retries, and liveness.py's bound."""

from __future__ import annotations

import pytest
import urllib3.exceptions
from deepspeech_operator.config import OperatorConfig
from deepspeech_operator.timeouts import (
    CallPolicy,
    KopfTimeouts,
    call_with_retries,
    dead_connection,
    liveness_stall_seconds,
    transient,
)
from kubernetes.client.rest import ApiException

READ_TIMEOUT = urllib3.exceptions.ReadTimeoutError(None, "/apis", "Read timed out.")


def test_policy_follows_the_config():
    policy = CallPolicy.of(OperatorConfig(api_timeout_seconds=20))
    assert policy.request_timeout == (5.0, 20.0)
    assert policy.backoffs() == [0.5, 1.0, 2.0]
    assert policy.budget() == 4 * 25 + 3.5
    assert CallPolicy.of(OperatorConfig(api_timeout_seconds=2)).request_timeout == (2.0, 2.0)


def test_kopf_watches_end_before_they_are_presumed_dead():
    t = KopfTimeouts.of(OperatorConfig(api_timeout_seconds=20, watch_timeout_seconds=30))
    assert t.watch_server_timeout == 30 and isinstance(t.watch_server_timeout, int)
    assert t.watch_server_timeout < t.watch_inactivity_timeout < t.watch_client_timeout
    assert t.request_timeout == 25 and t.connect_timeout == 5


def test_liveness_bound_is_longer_than_any_bounded_call():
    config = OperatorConfig(api_timeout_seconds=20)
    assert liveness_stall_seconds(config) > CallPolicy.of(config).budget()
    assert liveness_stall_seconds(OperatorConfig(liveness_stall_seconds=7)) == 7


@pytest.mark.parametrize(
    ("exc", "retry", "dead"),
    [
        (READ_TIMEOUT, True, True),
        (urllib3.exceptions.ProtocolError("Connection aborted."), True, True),
        (ConnectionResetError(), True, True),
        (ApiException(status=503), True, False),
        (ApiException(status=429), True, False),
        (ApiException(status=0, reason="SSLError"), True, False),
        (ApiException(status=409), False, False),
        (ApiException(status=422), False, False),
        (ApiException(status=403), False, False),
        (ValueError("bug"), False, False),
    ],
)
def test_what_is_retried(exc, retry, dead):
    assert transient(exc) is retry and dead_connection(exc) is dead


def _flaky(*failures: BaseException):
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return "ok"

    return fn, calls


def test_retries_transient_failures_with_backoff_and_fresh_connections():
    fn, calls = _flaky(READ_TIMEOUT, ApiException(status=500))
    slept: list[float] = []
    dropped: list[int] = []
    assert call_with_retries(fn, CallPolicy(), lambda: dropped.append(1), "x", sleep=slept.append) == "ok"
    assert len(calls) == 3 and slept == [0.5, 1.0]
    assert dropped == [1], "only the timeout condemns the pooled connections"


def test_gives_up_after_the_last_attempt_and_never_retries_a_final_answer():
    fn, calls = _flaky(*[READ_TIMEOUT] * 4)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        call_with_retries(fn, CallPolicy(attempts=4), lambda: None, "x", sleep=lambda _s: None)
    assert len(calls) == 4
    fn, calls = _flaky(ApiException(status=409))
    with pytest.raises(ApiException):
        call_with_retries(fn, CallPolicy(), lambda: None, "x", sleep=lambda _s: None)
    assert len(calls) == 1
