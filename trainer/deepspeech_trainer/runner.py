"""Runs one DeepSpeech invocation as a child process: streams and parses its output, forwards SIGTERM.

DeepSpeech saves checkpoints on its own schedule and does not handle SIGTERM (it dies without a final save), so on a
stop request the child gets SIGTERM and is then waited for; whatever it saved before stays on disk for the
caller to sync. A run that was asked to stop is never reported as a success, whatever its exit code
(SIGINT makes DeepSpeech exit 0 without saving).
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Final, Literal

from .invocation import Invocation
from .progress import ErrorLine, Event, TestResult, parse_line, text_lines

Stream = Literal["stdout", "stderr"]
LineSink = Callable[[Stream, str], None]
EventSink = Callable[[Event], None]

KEPT_EVENTS: Final = 200
FIXED_ENV: Final[Mapping[str, str]] = {
    "PYTHONUNBUFFERED": "1",
    # Without it TensorFlow reserves all GPU memory up front and cuDNN initialisation fails on some GPUs
    # (CUDNN_STATUS_INTERNAL_ERROR).
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",
}


@dataclass(frozen=True)
class RunResult:
    invocation: Invocation
    exit_code: int
    """Child's return code; negative = killed by that signal (-15 SIGTERM, -9 SIGKILL)."""
    interrupted: bool
    """A stop was requested (SIGTERM to us, or `Runner.stop()`) while the child ran."""
    duration_s: float
    events: tuple[Event, ...] = ()
    """The last KEPT_EVENTS events."""
    test_results: tuple[TestResult, ...] = ()
    errors: tuple[str, ...] = field(default=())
    causes: tuple[str, ...] = field(default=())
    """The errors the program reported itself (not traceback exception lines)."""
    """`E`/`FATAL`/exception lines, last ones kept: the best available failure reason."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.interrupted

    @property
    def failure_reason(self) -> str | None:
        if self.ok:
            return None
        if self.interrupted:
            return f"interrupted (exit {self.exit_code})"
        detail = f": {failure_detail(self.errors, self.causes)}" if self.errors else ""
        return f"DeepSpeech {self.invocation.purpose} exited with {self.exit_code}{detail}"


def child_env(
    extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(FIXED_ENV)
    env.update(extra or {})
    return env


def failure_detail(errors: tuple[str, ...], causes: tuple[str, ...]) -> str:
    """The last error, and the last reported cause when the last error is a traceback's consequence
    (0.6: `NameError: name 'sys' is not defined` after `Could not load checkpoint from …`)."""
    last = errors[-1]
    if causes and causes[-1] != last:
        return f"{last} (after: {causes[-1]})"
    return last


def with_interpreter_on_path(env: Mapping[str, str], interpreter: str) -> dict[str, str]:
    """The child's env with its interpreter's bin/ first on PATH: TensorFlow's TFLite export runs
    `toco_from_protos` by name, and in a virtualenv that script lives only beside the interpreter."""
    out = dict(env)
    if os.sep in interpreter:
        bin_dir = os.path.dirname(interpreter)
        rest = [p for p in out.get("PATH", os.defpath).split(os.pathsep) if p and p != bin_dir]
        out["PATH"] = os.pathsep.join([bin_dir, *rest])
    return out


def stdout_sink(stream: Stream, line: str) -> None:
    """Default log: the child's lines on our own stdout/stderr, so the pod log shows DeepSpeech as is."""
    target = sys.stdout if stream == "stdout" else sys.stderr
    target.write(line + "\n")
    target.flush()


class Runner:
    """Runs invocations one at a time; `stop()` (or SIGTERM, see `handle_sigterm`) stops the current one."""

    def __init__(
        self,
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        log: LineSink = stdout_sink,
        on_event: EventSink | None = None,
        kill_after_s: float | None = None,
    ) -> None:
        self._cwd = Path(cwd)
        self._env = child_env(env)
        self._log = log
        self._on_event = on_event
        self._kill_after_s = kill_after_s
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._stop_requested = threading.Event()
        self._stopped_at: float | None = None

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested.is_set()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Ask the running child (and every later one) to stop. Safe from signal handlers and threads."""
        self._stop_requested.set()
        if self._stopped_at is None:
            self._stopped_at = time.monotonic()
        # No lock here: this runs in the SIGTERM handler, which may interrupt the thread holding one.
        # Reading the attribute is atomic; a child started right after is stopped by run()'s re-check.
        child = self._child
        if child is not None and child.returncode is None:
            # The whole process group: DeepSpeech's multiprocessing workers go with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, sig)

    def handle_sigterm(self) -> Callable[[], None]:
        """Install a SIGTERM handler that forwards to the child; returns a function restoring the old one."""
        previous = signal.getsignal(signal.SIGTERM)

        def forward(signum: int, frame: FrameType | None) -> None:
            self.stop(signal.SIGTERM)

        signal.signal(signal.SIGTERM, forward)

        def restore() -> None:
            signal.signal(signal.SIGTERM, previous)

        return restore

    def run(self, invocation: Invocation) -> RunResult:
        started = time.monotonic()
        events: deque[Event] = deque(maxlen=KEPT_EVENTS)
        tests: list[TestResult] = []
        errors: deque[str] = deque(maxlen=20)
        causes: deque[str] = deque(maxlen=20)
        if self._stop_requested.is_set():
            return RunResult(invocation, -signal.SIGTERM, True, 0.0)

        # Own session: a terminal's Ctrl-C or a group kill must not reach DeepSpeech past us (SIGINT would
        # make it skip saving and go on to test/export).
        child = subprocess.Popen(
            invocation.argv,
            cwd=self._cwd,
            env=with_interpreter_on_path(self._env, invocation.argv[0]),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        with self._lock:
            self._child = child
        if self._stop_requested.is_set():  # stop() raced with the start
            self.stop()

        lines: queue.Queue[tuple[Stream, str] | None] = queue.Queue()
        readers = [
            threading.Thread(target=_pump, args=(child.stdout, "stdout", lines), daemon=True),
            threading.Thread(target=_pump, args=(child.stderr, "stderr", lines), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            open_streams = len(readers)
            while open_streams:
                try:
                    item = lines.get(timeout=0.2)
                except queue.Empty:
                    self._maybe_kill(child)
                    continue
                if item is None:
                    open_streams -= 1
                    continue
                stream, line = item
                self._log(stream, line)
                event = parse_line(line)
                if event is None:
                    continue
                events.append(event)
                if isinstance(event, TestResult):
                    tests.append(event)
                if isinstance(event, ErrorLine):
                    errors.append(event.message)
                    if event.cause:
                        causes.append(event.message)
                if self._on_event is not None:
                    self._on_event(event)
            while True:
                try:
                    exit_code = child.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    self._maybe_kill(child)
        finally:
            if child.poll() is None:  # our caller raised: never leave DeepSpeech running unsupervised
                _kill_group(child)
                child.wait()
            with self._lock:
                self._child = None
        return RunResult(
            invocation,
            exit_code,
            self._stop_requested.is_set(),
            time.monotonic() - started,
            tuple(events),
            tuple(tests),
            tuple(errors),
            tuple(causes),
        )

    def _maybe_kill(self, child: subprocess.Popen[bytes]) -> None:
        if self._kill_after_s is None or self._stopped_at is None or child.poll() is not None:
            return
        if time.monotonic() - self._stopped_at >= self._kill_after_s:
            _kill_group(child)


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole process group (it leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)


def _pump(pipe: IO[bytes] | None, stream: Stream, out: queue.Queue[tuple[Stream, str] | None]) -> None:
    assert pipe is not None
    try:
        for line in text_lines(pipe):
            out.put((stream, line))
    finally:
        pipe.close()
        out.put(None)


def run_invocation(
    invocation: Invocation,
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    log: LineSink = stdout_sink,
    on_event: EventSink | None = None,
    forward_sigterm: bool = True,
) -> RunResult:
    """Run one invocation to its end. With `forward_sigterm` (main thread only), SIGTERM to this process
    is forwarded to DeepSpeech for the duration of the run."""
    runner = Runner(cwd=cwd, env=env, log=log, on_event=on_event)
    restore = runner.handle_sigterm() if forward_sigterm else None
    try:
        return runner.run(invocation)
    finally:
        if restore is not None:
            restore()
