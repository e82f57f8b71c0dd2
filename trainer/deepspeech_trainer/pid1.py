"""A minimal init for when the trainer is its container's PID 1.

A Job's `command` replaces the image's ENTRYPOINT, so no init such as tini runs in the trainer's container:
the trainer itself is PID 1, and every process orphaned inside the container (DeepSpeech's
`multiprocessing.Pool` workers when DeepSpeech dies, children of a killed shell) is re-parented to it. The
kernel keeps each as a zombie until PID 1 waits for it, and PID 1 also gets no default signal actions
(SIGTERM is ignored unless handled). So, as PID 1, the trainer forks: the parent only forwards signals to
the child and reaps whatever exits, the child is the trainer and returns to run normally. The parent exits
with the child's status; the kernel then ends every process left in the container's PID namespace.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
DISABLE_ENV = "DST_NO_INIT"  # set to 1 when something else is the init (e.g. shareProcessNamespace)


def exit_code(wait_status: int) -> int:
    """The shell's convention: the exit code, or 128 + the signal that killed the process."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def reap_orphans_if_pid1() -> None:
    """Return at once unless this process is PID 1; as PID 1, return only in the forked trainer child."""
    if os.getpid() != 1 or os.environ.get(DISABLE_ENV) == "1":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:
        return
    os._exit(_supervise(child))


def _supervise(child: int) -> int:
    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):  # it exited; its status is about to be reaped
            os.kill(child, signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:  # cannot happen while the child lives; be safe rather than spin
            return 1
        if pid == child:
            return exit_code(status)
