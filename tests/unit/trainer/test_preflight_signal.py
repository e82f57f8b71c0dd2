"""preflight stops at once on SIGTERM (exit 75) instead of sitting out the pod's grace period."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from tests.cluster.processes import wait_until


def test_sigterm_ends_a_preflight_stuck_on_storage_with_75(tmp_path):
    # A server that accepts connections and never answers: preflight waits on its first S3 read.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(60)
    spec = {
        "data": {"train": ["s3://corpus/train.csv"]},
        "output": {"uri": "s3://models/out/"},
        "storage": {"endpoint": f"http://127.0.0.1:{server.getsockname()[1]}"},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "DST_TERMINATION_LOG": str(tmp_path / "termination"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepspeech_trainer.cli", "preflight", "--spec", str(tmp_path / "spec.json"),
         "--work-dir", str(tmp_path / "w")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        conn = wait_until(lambda: server.accept()[0], 60, "preflight to connect to S3")
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert proc.wait(timeout=10) == 75
        assert time.monotonic() - started < 10
        conn.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
