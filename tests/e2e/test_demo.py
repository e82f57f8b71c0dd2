"""`make demo` on the session's cluster: the dry run reaches its end and prints the DeepSpeech command lines."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.cluster import processes
from tests.cluster.config import REPO, STATE_DIR

pytestmark = pytest.mark.cluster


def test_demo_dry_run_prints_preflight_and_command_lines(cluster):
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tests.e2e.demo", "up"],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        processes.stop("operator", STATE_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Preflight: ok=True rows=12 problems=0" in result.stdout
    assert "/usr/bin/python3 -u -m deepspeech_training.train --log_level 1" in result.stdout
    assert "--n_hidden 2048" in result.stdout and "--epochs 3" in result.stdout
    assert "TensorFlow 1.15" in result.stdout, "the demo says plainly that nothing trains here"
