"""The GPU check's decisions: which GPU a TensorFlow build can use, and what is retried or not."""

from __future__ import annotations

import sys

import pytest
from deepspeech_trainer.exitcodes import InvalidInput, TransientError
from deepspeech_trainer.gpucheck import (
    Gpu,
    TensorFlowInfo,
    findings,
    parse_nvidia_smi,
    parse_tf_probe,
    verify,
)

H100 = Gpu("NVIDIA H100 80GB HBM3", (9, 0), 81559, "550.54.15")
A100 = Gpu("NVIDIA A100-SXM4-40GB", (8, 0), 40960, "550.54.15")
T4 = Gpu("Tesla T4", (7, 5), 15360, "535.104.05")
K80 = Gpu("Tesla K80", (3, 7), 11441, "470.82.01")
STOCK = TensorFlowInfo("1.15.4", True, 1)
NGC = TensorFlowInfo("1.15.5+nv23.03", True, 1)


def test_parse_nvidia_smi_csv():
    text = "NVIDIA H100 80GB HBM3, 9.0, 81559, 550.54.15\nTesla T4, 7.5, 15360, 535.104.05\n"
    assert parse_nvidia_smi(text) == [H100, T4]


def test_parse_tf_probe_takes_the_last_line():
    assert parse_tf_probe(
        '2026 W some warning\n{"version": "1.15.4", "cuda": true, "gpus": 2}\n'
    ) == TensorFlowInfo("1.15.4", True, 2)


def test_no_gpu_requested_needs_nothing():
    assert findings(0, None, None) == []


def test_turing_on_stock_tensorflow_is_fine():
    assert findings(1, [T4], STOCK) == []


@pytest.mark.parametrize("gpu", [A100, H100])
def test_ampere_and_hopper_need_nvidia_builds(gpu):
    (problem,) = findings(1, [gpu], STOCK)
    assert problem.permanent and "needs an NVIDIA TF1 build" in problem.message
    assert findings(1, [gpu], NGC) == []


def test_kepler_is_too_old_for_nvidia_builds():
    (problem,) = findings(1, [K80], NGC)
    assert problem.permanent and "too old" in problem.message


def test_cpu_only_tensorflow_is_permanent():
    (problem,) = findings(1, [T4], TensorFlowInfo("1.15.4", False, 0))
    assert problem.permanent and "CPU-only build" in problem.message


def test_missing_driver_and_invisible_gpus_may_be_retried():
    problems = findings(2, None, TensorFlowInfo("1.15.4", True, 0))
    assert [p.permanent for p in problems] == [False, False]
    assert "nvidia-smi not found" in problems[0].message
    assert "TensorFlow sees 0 GPU(s), 2 requested" in problems[1].message


def test_fewer_gpus_than_requested():
    (problem,) = findings(2, [T4], TensorFlowInfo("1.15.4", True, 2))
    assert not problem.permanent and "sees 1 GPU(s)" in problem.message


def test_verify_skips_when_off_or_cpu_only():
    assert verify({"resources": {"gpus": 1}}, {"DST_GPU_CHECK": "off"}) == []
    assert verify({"resources": {"gpus": 0}}, {}) == []


def test_verify_without_tensorflow_is_a_retryable_error():
    # This interpreter has no TensorFlow: the probe fails, which another pod (or image) may not.
    with pytest.raises(TransientError, match="TensorFlow probe failed"):
        verify({"resources": {"gpus": 1}}, {"DST_TF_PYTHON": sys.executable, "PATH": "/nonexistent"})


def test_verify_permanent_finding_is_invalid(monkeypatch):
    monkeypatch.setattr("deepspeech_trainer.gpucheck.probe", lambda env: ([H100], STOCK, ""))
    with pytest.raises(InvalidInput, match=r"compute capability 9\.0"):
        verify({"resources": {"gpus": 1}}, {})
