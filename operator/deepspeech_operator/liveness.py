"""Is the operator stuck? The answer behind /healthz, so that Kubernetes restarts a wedged operator.

Two signs, each with one bound (timeouts.liveness_stall_seconds):

- An API call still running. Every blocking call runs under `Watchdog.track` from the moment a worker
  thread starts it (time queued for a thread is not counted: a burst of work is not a stall). The
  timeouts and retries of timeouts.py bound how long a call can take; one running longer means a path
  they do not cover, and reconciliation waits on it.
- Work pending with no progress: a wake-up of a DeepSpeechTraining (the observed-child annotation) that
  failed after all its retries is owed until a later one is delivered or the CR is reconciled. kopf does
  not retry event handlers, so without another event of that CR's children nothing would reconcile it; a
  restart does (kopf resumes every CR).

Then the probe fails, and the kubelet restarts the pod after the probe's failure threshold. Watch streams
are kopf's: it drops a silent stream itself (timeouts.KopfTimeouts), and a blocked event loop cannot answer
/healthz at all, which the probe's own timeout turns into a failure.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any


def overdue(waiting: Mapping[Any, tuple[str, float]], now: float, limit: float) -> str | None:
    """The oldest of `waiting` (key -> (what, since)) older than `limit` seconds, described; None when
    all are younger."""
    if not waiting:
        return None
    what, since = min(waiting.values(), key=lambda item: item[1])
    age = now - since
    if age <= limit:
        return None
    others = sum(1 for _what, started in waiting.values() if now - started > limit) - 1
    more = f" (and {others} more)" if others > 0 else ""
    return f"{what} for {age:.0f}s, longer than {limit:.0f}s{more}"


class Watchdog:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._running: dict[int, tuple[str, float]] = {}
        self._owed: dict[str, tuple[str, float]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    @contextmanager
    def track(self, what: str) -> Iterator[None]:
        key = next(self._ids)
        with self._lock:
            self._running[key] = (f"API call {what} running", self._clock())
        try:
            yield
        finally:
            with self._lock:
                del self._running[key]

    def owe(self, cr: str) -> None:
        """A wake-up of `cr` ("<namespace>/<name>") was lost; owed since the first loss."""
        with self._lock:
            self._owed.setdefault(cr, (f"wake-up of {cr} undelivered", self._clock()))

    def settle(self, cr: str) -> None:
        with self._lock:
            self._owed.pop(cr, None)

    def stuck(self, limit: float) -> str | None:
        with self._lock:
            waiting: dict[Any, tuple[str, float]] = {**self._running, **self._owed}
        return overdue(waiting, self._clock(), limit)
