"""Timeouts and retries of every API request the operator makes: one policy, derived from the config.

Why: without a request timeout, a call sent over a connection that a NAT or load balancer silently dropped
waits forever (the fault probe of issue 14 left a CR Validating for 850 s while a fresh operator fixed it
in 2 s). So each call of the operator's own client (k8s.py) times out, is retried with backoff, and after a
timeout or a dropped connection the client's idle pooled connections are closed: they went through the
same dead path, and a retry on one of them would only wait again. kopf's requests get the same timeout, and
its watch streams are ended by the server regularly and presumed dead when silent for longer.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import urllib3.exceptions
from kubernetes.client.rest import ApiException

from .config import OperatorConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

# HTTP statuses worth another attempt: throttling and an API server (or etcd behind it) in trouble.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A live watch is never silent for longer than its server-side timeout (the API server sends a bookmark
# just before it ends the watch, and kopf reopens it at once); this margin covers a slow reconnect.
WATCH_SILENCE_MARGIN_S = 10
LIVENESS_MARGIN_S = 30


@dataclasses.dataclass(frozen=True)
class CallPolicy:
    read_timeout: float = 20.0
    connect_timeout: float = 5.0
    attempts: int = 4
    first_backoff: float = 0.5
    max_backoff: float = 8.0

    @classmethod
    def of(cls, config: OperatorConfig) -> CallPolicy:
        timeout = float(config.api_timeout_seconds)
        return cls(read_timeout=timeout, connect_timeout=min(5.0, timeout))

    @property
    def request_timeout(self) -> tuple[float, float]:
        """The kubernetes client's `_request_timeout`: (connect, read)."""
        return (self.connect_timeout, self.read_timeout)

    def backoffs(self) -> list[float]:
        """Pauses between attempts: exponential, capped."""
        return [min(self.max_backoff, self.first_backoff * 2**i) for i in range(self.attempts - 1)]

    def budget(self) -> float:
        """The longest one call can take, every attempt timing out: the bound liveness checks against."""
        return self.attempts * (self.connect_timeout + self.read_timeout) + sum(self.backoffs())


@dataclasses.dataclass(frozen=True)
class KopfTimeouts:
    """The kopf settings (settings.networking / settings.watching) that bound its requests and watches."""

    request_timeout: float
    connect_timeout: float
    watch_server_timeout: int  # sent as the watch's timeoutSeconds, which the API server parses as an integer
    watch_client_timeout: float
    watch_inactivity_timeout: float

    @classmethod
    def of(cls, config: OperatorConfig) -> KopfTimeouts:
        policy = CallPolicy.of(config)
        watch = int(config.watch_timeout_seconds)
        return cls(
            request_timeout=policy.read_timeout + policy.connect_timeout,
            connect_timeout=policy.connect_timeout,
            watch_server_timeout=watch,
            # Only a backstop: the server ends the watch first, the inactivity timeout catches dead ones.
            watch_client_timeout=watch + 60,
            watch_inactivity_timeout=watch + WATCH_SILENCE_MARGIN_S,
        )


def liveness_stall_seconds(config: OperatorConfig) -> float:
    """How long an API call may run before /healthz reports the operator stuck: longer than any call that
    the timeouts still bound can take, so only a call they failed to bound trips it."""
    if config.liveness_stall_seconds:
        return float(config.liveness_stall_seconds)
    return CallPolicy.of(config).budget() + LIVENESS_MARGIN_S


def dead_connection(exc: BaseException) -> bool:
    """A timeout or a broken connection: the pooled connections that shared its path are suspect."""
    return isinstance(
        exc,
        urllib3.exceptions.TimeoutError
        | urllib3.exceptions.ProtocolError
        | urllib3.exceptions.NewConnectionError
        | urllib3.exceptions.MaxRetryError
        | ConnectionError
        | TimeoutError,
    )


def transient(exc: BaseException) -> bool:
    """Worth another attempt: a dead connection, throttling, or a server error. A 4xx answer is final."""
    if isinstance(exc, ApiException):
        # status 0: the client wrapped a TLS failure (a reset during the handshake, as often as not).
        return exc.status in RETRY_STATUSES or exc.status == 0
    return dead_connection(exc) or isinstance(exc, urllib3.exceptions.HTTPError)


def call_with_retries(
    fn: Callable[[], T],
    policy: CallPolicy,
    on_dead_connection: Callable[[], None],
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """fn() under `policy`: transient failures are retried after a backoff, the last one is raised."""
    pauses = policy.backoffs()
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if not transient(exc) or attempt == policy.attempts:
                raise
            if dead_connection(exc):
                on_dead_connection()
            pause = pauses[attempt - 1]
            log.warning(
                "%s: attempt %d/%d failed (%r); retrying in %.1fs", what, attempt, policy.attempts, exc, pause
            )
            sleep(pause)
    raise AssertionError("unreachable: the last attempt returns or raises")
