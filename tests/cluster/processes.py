"""Background processes of the local cluster: started in their own session, stopped by recorded PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(name: str, argv: Sequence[str], state: Path, env: Mapping[str, str] | None = None) -> int:
    """Starts argv detached from this process (it outlives `cluster up`), logging to state/logs/<name>.log."""
    (state / "logs").mkdir(parents=True, exist_ok=True)
    (state / "pids").mkdir(parents=True, exist_ok=True)
    with open(state / "logs" / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    (state / "pids" / name).write_text(str(proc.pid))
    return proc.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not reaped by its parent) is not alive.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def recorded(state: Path) -> dict[str, int]:
    pids = state / "pids"
    if not pids.is_dir():
        return {}
    return {p.name: int(p.read_text()) for p in pids.iterdir()}


def stop(name: str, state: Path, grace: float = 10.0) -> None:
    """SIGTERM to the process group, SIGKILL after `grace` seconds; never kills by name."""
    pid_file = state / "pids" / name
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        try:
            wait_until(lambda: not alive(pid), wait, f"{name} (pid {pid}) to exit")
            break
        except TimeoutError:
            continue
    pid_file.unlink(missing_ok=True)


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    """Polls `predicate` until it returns something truthy; raises TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # the thing waited for may not answer yet
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)
