"""Is the operator stuck? The answer behind /healthz, so that Kubernetes restarts a wedged operator.

Every blocking API call runs under `Watchdog.track` from the moment a worker thread starts it (time spent
queued for a thread is not counted: a burst of work is not a stall). The timeouts and retries of
timeouts.py bound how long a call can take; one that has run longer than that (plus a margin) means a
path those timeouts do not cover, and reconciliation waits on it. Then the probe fails, and the kubelet
restarts the pod after the probe's failure threshold.

Watch streams are kopf's: it drops a silent stream itself (timeouts.KopfTimeouts), and a blocked event
loop cannot answer /healthz at all, which the probe's own timeout turns into a failure.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager


def overdue(running: Mapping[int, tuple[str, float]], now: float, limit: float) -> str | None:
    """The oldest operation running longer than `limit` seconds, described; None when all are younger."""
    if not running:
        return None
    what, started = min(running.values(), key=lambda item: item[1])
    age = now - started
    if age <= limit:
        return None
    others = sum(1 for _what, since in running.values() if now - since > limit) - 1
    more = f" (and {others} more)" if others > 0 else ""
    return f"{what} has run for {age:.0f}s, longer than {limit:.0f}s{more}"


class Watchdog:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._running: dict[int, tuple[str, float]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    @contextmanager
    def track(self, what: str) -> Iterator[None]:
        key = next(self._ids)
        with self._lock:
            self._running[key] = (what, self._clock())
        try:
            yield
        finally:
            with self._lock:
                del self._running[key]

    def stuck(self, limit: float) -> str | None:
        with self._lock:
            running = dict(self._running)
        return overdue(running, self._clock(), limit)
