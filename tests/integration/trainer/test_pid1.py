"""The trainer as its container's PID 1 (a Job's `command` replaces any init of the image): orphans are
reaped, the trainer's exit status and signals pass through. Run in a real PID namespace
(`unshare --fork --pid --mount-proc`), where the trainer's process is PID 1 as in a container."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cluster.processes import wait_until

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare for a PID namespace"
)

# Starts the init as the console script does, orphans a process (a shell exits before its background
# child), waits until that child has exited, then reports what is left of it: a zombie nobody reaped or
# nothing. Exits 7 (or 75 on SIGTERM) so the test sees the status pass through.
WORKLOAD = textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time
    from deepspeech_trainer import pid1
    pid1.reap_orphans_if_pid1()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(75))
    out = subprocess.run(["sh", "-c", "sleep 0.2 & echo $!"], capture_output=True, text=True)
    orphan = int(out.stdout)

    def state():
        try:
            return open(f"/proc/{orphan}/stat").read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return "gone"

    deadline = time.monotonic() + 20
    while state() not in ("Z", "gone") and time.monotonic() < deadline:
        time.sleep(0.02)
    # a zombie of PID 1 stays Z for good; one reaped by the init goes within moments
    while state() == "Z" and time.monotonic() < deadline - 15:
        time.sleep(0.02)
    print(json.dumps({"pid": os.getpid(), "orphan": state()}), flush=True)
    if os.environ.get("WAIT_FOR_SIGTERM"):
        signal.pause()
    sys.exit(7)
    """
)


def run_in_pid_namespace(tmp_path: Path, **env: str) -> subprocess.Popen:
    script = tmp_path / "workload.py"
    script.write_text(WORKLOAD)
    argv = ["unshare", "--fork", "--pid", "--mount-proc", sys.executable, str(script)]
    return subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def report(proc: subprocess.Popen) -> dict:
    assert proc.stdout is not None
    return json.loads(proc.stdout.readline())


def test_as_pid1_the_trainer_reaps_orphans_and_passes_its_exit_status(tmp_path):
    proc = run_in_pid_namespace(tmp_path)
    seen = report(proc)
    assert proc.wait(timeout=60) == 7, proc.stderr.read()
    assert seen["pid"] != 1, "the trainer runs as the init's child"
    assert seen["orphan"] == "gone", "the init reaped the orphan"


def test_without_the_init_the_orphan_stays_a_zombie(tmp_path):
    """What the init fixes: as PID 1 itself the trainer never waits for re-parented processes."""
    proc = run_in_pid_namespace(tmp_path, DST_NO_INIT="1")
    seen = report(proc)
    assert proc.wait(timeout=60) == 7, proc.stderr.read()
    assert seen == {"pid": 1, "orphan": "Z"}


def test_sigterm_to_pid1_reaches_the_trainer(tmp_path):
    proc = run_in_pid_namespace(tmp_path, WAIT_FOR_SIGTERM="1")
    assert report(proc)["pid"] != 1
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    init = wait_until(lambda: children.read_text().split(), 10, "the namespace's PID 1")
    os.kill(int(init[0]), signal.SIGTERM)  # what the kubelet does on eviction or deletion
    assert proc.wait(timeout=60) == 75, proc.stderr.read()
