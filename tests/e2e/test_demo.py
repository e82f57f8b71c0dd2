"""`make demo` on the session's cluster: a real tiny training reaches its end and prints its results."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.cluster import processes
from tests.cluster.config import REPO, STATE_DIR

pytestmark = pytest.mark.cluster


@pytest.mark.real_training
def test_demo_trains_a_real_model_and_prints_its_results(cluster):
    from tests import engines

    engines.require("coqui-stt-1.4.0")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tests.e2e.demo", "up"],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), "DEMO_ENGINE": "coqui-stt-1.4.0"},
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        processes.stop("operator", STATE_DIR)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Preflight: ok=True rows=12 problems=0" in out
    assert "Succeeded" in out and "20/20" in out, "kubectl get dst -w showed the run to its end"
    assert "smoke test: output_graph.tflite heard" in out
    assert "WER " in out and "s3://demo/models/demo/" in out
    assert "Real training: Coqui STT 1.4.0" in out and "A GPU cluster runs the same object" in out
