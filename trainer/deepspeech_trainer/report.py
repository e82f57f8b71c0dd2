"""The two reporting channels of docs/contract.md: the termination message and the live status patch.

Neither may break a run: the termination message always fits its 4096 bytes (problems are dropped
first, then long strings are cut), and a failed status patch is logged and forgotten. The status
reporter uses only urllib + ssl: the trainer image carries no Kubernetes client.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TERMINATION_LOG = "/dev/termination-log"
MAX_MESSAGE_BYTES = 4096
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
GROUP_VERSION = "training.deepspeech.dev/v1alpha1"
PLURAL = "deepspeechtrainings"
DEFAULT_MIN_INTERVAL_S = 10.0


# --------------------------------------------------------------------------------------------- termination


def termination_log_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("DST_TERMINATION_LOG") or TERMINATION_LOG)


def _encode(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def fit_message(obj: Mapping[str, Any], limit: int = MAX_MESSAGE_BYTES) -> bytes:
    """JSON of `obj` in at most `limit` bytes. Degrades by dropping problems (the count stays), then by
    shortening strings; `problemCount` is kept so the reader knows how many there were, and the first
    problem always survives (shortened if need be): it is the one a user needs to start fixing."""
    data = _encode(obj)
    if len(data) <= limit:
        return data
    out = copy.deepcopy(dict(obj))
    problems = list(out.get("problems") or [])
    if problems:
        out.setdefault("problemCount", len(problems))
        out["problemsTruncated"] = True  # set before measuring: the marker takes bytes too
        out["problems"] = problems[: max(1, _most_problems_fitting(out, problems, limit))]
        data = _encode(out)
        if len(data) <= limit:
            return data
    for cut in (1024, 256, 64):
        out = _shorten(out, cut)
        data = _encode(out)
        if len(data) <= limit:
            return data
    # Pathological input (huge keys or many fields): scalars that identify the outcome, first problem.
    keep = {
        k: v
        for k, v in out.items()
        if isinstance(v, bool | int | float) or k in ("kind", "runId", "problems")
    }
    keep["truncated"] = True
    data = _encode(_shorten(keep, 64))
    if len(data) <= limit:
        return data
    essential = ("kind", "runId", "ok", "exitCode", "problemCount", "problems", "truncated")
    return _encode(_shorten({k: keep[k] for k in essential if k in keep}, 64))


def _most_problems_fitting(out: dict[str, Any], problems: list[Any], limit: int) -> int:
    """Largest n such that `out` with the first n problems encodes within `limit` (0 if none fits)."""
    lo, hi = 0, len(problems)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        out["problems"] = problems[:mid]
        if len(_encode(out)) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _shorten(value: Any, cut: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= cut else value[: cut - 1] + "…"
    if isinstance(value, list):
        return [_shorten(v, cut) for v in value]
    if isinstance(value, dict):
        return {k: _shorten(v, cut) for k, v in value.items()}
    return value


def write_termination_message(obj: Mapping[str, Any], path: Path | None = None) -> bytes:
    """Write the contract's termination message; failures are logged (a missing file is not fatal)."""
    data = fit_message(obj)
    target = path or termination_log_path()
    try:
        target.write_bytes(data)
    except OSError as exc:
        log.warning("cannot write termination message to %s: %s", target, exc)
    return data


# --------------------------------------------------------------------------------------------- live status


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StatusReporter:
    """Merge-patches `deepspeechtrainings/<name>/status` of its own CR; rate-limited, never fatal.

    Progress is coalesced: between patches only the newest values are kept, and a forced patch
    (epoch end, checkpoint, plan) sends them at once. Every patch carries `progress.runId`.
    """

    def __init__(
        self,
        name: str | None,
        namespace: str | None,
        run_id: str,
        *,
        api_base: str | None = None,
        token_path: Path | None = None,
        ssl_context: ssl.SSLContext | None = None,
        min_interval_s: float = DEFAULT_MIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        timeout_s: float = 5.0,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.run_id = run_id
        self.api_base = api_base
        self.token_path = token_path
        self.ssl_context = ssl_context
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.timeout_s = timeout_s
        self._last_sent: float | None = None
        self._pending: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.sent: int = 0
        self.failures: int = 0
        self.enabled = bool(api_base and name and namespace)
        if not self.enabled:
            log.info(
                "status reporting off (not in a cluster or DST_NAME/DST_NAMESPACE unset): progress only logged"
            )

    @classmethod
    def from_env(cls, run_id: str, env: Mapping[str, str] | None = None, **kwargs: Any) -> StatusReporter:
        env = os.environ if env is None else env
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
        token = SERVICE_ACCOUNT_DIR / "token"
        ca = SERVICE_ACCOUNT_DIR / "ca.crt"
        api_base = None
        context = None
        if host and token.is_file():
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"  # IPv6 service address
            api_base = f"https://{host}:{port}"
            context = ssl.create_default_context(cafile=str(ca) if ca.is_file() else None)
        return cls(
            env.get("DST_NAME"),
            env.get("DST_NAMESPACE"),
            run_id,
            api_base=api_base,
            token_path=token,
            ssl_context=context,
            **kwargs,
        )

    @property
    def url(self) -> str:
        return f"{self.api_base}/apis/{GROUP_VERSION}/namespaces/{self.namespace}/{PLURAL}/{self.name}/status"

    def progress(self, *, force: bool = False, **fields: Any) -> bool:
        """Record progress fields (epoch, epochs, step, trainLoss, devLoss); patch if due or forced."""
        clean = {k: v for k, v in fields.items() if v is not None}
        with self._lock:
            self._pending.setdefault("progress", {}).update(clean)
        return self._maybe_send(force)

    def checkpoint(self, uri: str, epoch: int) -> bool:
        with self._lock:
            self._pending["checkpoint"] = {"uri": uri, "epoch": epoch}
        return self._maybe_send(True)

    def plan(self, plan: Mapping[str, Any]) -> bool:
        with self._lock:
            self._pending["plan"] = dict(plan)
        return self._maybe_send(True)

    def flush(self) -> bool:
        return self._maybe_send(True)

    def _maybe_send(self, force: bool) -> bool:
        with self._lock:
            if not self._pending:
                return False
            now = self.clock()
            if not force and self._last_sent is not None and now - self._last_sent < self.min_interval_s:
                return False
            body = self._pending
            self._pending = {}
            self._last_sent = now
        progress = body.setdefault("progress", {})
        progress["runId"] = self.run_id
        progress["updatedAt"] = now_iso()
        return self._send({"status": body})

    def _send(self, patch: Mapping[str, Any]) -> bool:
        if not self.enabled:
            log.info("status: %s", json.dumps(patch["status"], sort_keys=True))
            return False
        headers = {"Content-Type": "application/merge-patch+json", "Accept": "application/json"}
        try:
            if self.token_path is not None:
                # Re-read each time: projected service-account tokens are rotated by the kubelet.
                headers["Authorization"] = "Bearer " + self.token_path.read_text().strip()
            request = urllib.request.Request(self.url, data=_encode(patch), headers=headers, method="PATCH")
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=self.ssl_context) as resp:
                resp.read()
            self.sent += 1
            return True
        except urllib.error.HTTPError as exc:
            self.failures += 1
            log.warning(
                "status patch failed: HTTP %s %s", exc.code, exc.read()[:300].decode("utf-8", "replace")
            )
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.failures += 1
            log.warning("status patch failed: %s", exc)
        return False
