"""GPU preflight of the training pod: the GPUs the spec asks for are there, TensorFlow sees them, and the
image's TensorFlow build supports their generation.

Without it DeepSpeech trains on the CPU without a word when the GPU is unusable (TensorFlow falls back to
the CPU silently): a stock TensorFlow 1.15 build has no kernels for Ampere or Hopper (compute capability 8.0+). The pure functions decide; `probe()`
asks `nvidia-smi` and the TF1 interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deepspeech_trainer.exitcodes import InvalidInput, TransientError

NVIDIA_SMI_QUERY = "--query-gpu=name,compute_cap,memory.total,driver_version"
# Runs under the image's TensorFlow 1.x interpreter; prints one JSON line.
TF_PROBE = (
    "import json, tensorflow as tf\n"
    "from tensorflow.python.client import device_lib\n"
    "gpus = [d for d in device_lib.list_local_devices() if d.device_type == 'GPU']\n"
    "print(json.dumps({'version': tf.__version__, 'cuda': tf.test.is_built_with_cuda(), 'gpus': len(gpus)}))\n"
)
# Stock TensorFlow 1.15 (CUDA 10.0) ships kernels up to Turing; NVIDIA's TF1 builds ("+nv") start at Pascal.
STOCK_MAX_CAPABILITY = (7, 5)
NVIDIA_MIN_CAPABILITY = (6, 0)
PROBE_TIMEOUT_S = 180


@dataclass(frozen=True)
class Gpu:
    name: str
    capability: tuple[int, int]
    memory_mib: int
    driver: str


@dataclass(frozen=True)
class TensorFlowInfo:
    version: str
    built_with_cuda: bool
    gpus: int

    @property
    def nvidia_build(self) -> bool:
        return "+nv" in self.version


@dataclass(frozen=True)
class Finding:
    permanent: bool  # True: another node or attempt cannot help (the image cannot use this GPU)
    message: str


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Lines of `nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader,nounits`."""
    gpus = []
    for line in text.strip().splitlines():
        name, capability, memory, driver = (field.strip() for field in line.split(","))
        major, _, minor = capability.partition(".")
        gpus.append(Gpu(name, (int(major), int(minor or 0)), int(float(memory)), driver))
    return gpus


def parse_tf_probe(text: str) -> TensorFlowInfo:
    data = json.loads(text.strip().splitlines()[-1])
    return TensorFlowInfo(str(data["version"]), bool(data["cuda"]), int(data["gpus"]))


def findings(requested: int, gpus: list[Gpu] | None, tf: TensorFlowInfo | None) -> list[Finding]:
    """What stops `requested` GPUs from training; empty when all is well. None = could not be probed."""
    if requested == 0:
        return []
    problems = []
    if gpus is None:
        problems.append(
            Finding(False, "nvidia-smi not found: no NVIDIA driver in the pod (is the node a GPU node?)")
        )
    elif len(gpus) < requested:
        problems.append(
            Finding(False, f"spec.resources.gpus is {requested} but the pod sees {len(gpus)} GPU(s)")
        )
    if tf is None:
        return problems
    if not tf.built_with_cuda:
        problems.append(
            Finding(
                True,
                f"TensorFlow {tf.version} in the image is a CPU-only build: training would run on the CPU",
            )
        )
        return problems
    for gpu in gpus or []:
        cap = f"{gpu.capability[0]}.{gpu.capability[1]}"
        if not tf.nvidia_build and gpu.capability > STOCK_MAX_CAPABILITY:
            problems.append(
                Finding(
                    True,
                    f"{gpu.name} (compute capability {cap}) needs an NVIDIA TF1 build; TensorFlow {tf.version} in this image stops at 7.5 (docs/images.md)",
                )
            )
        if tf.nvidia_build and gpu.capability < NVIDIA_MIN_CAPABILITY:
            problems.append(
                Finding(
                    True,
                    f"{gpu.name} (compute capability {cap}) is too old for NVIDIA's TF1 build {tf.version}; use the official base image (docs/images.md)",
                )
            )
    if tf.gpus < requested and not any(f.permanent for f in problems):
        problems.append(
            Finding(
                False,
                f"TensorFlow sees {tf.gpus} GPU(s), {requested} requested: training would run on the CPU",
            )
        )
    return problems


def probe(env: Mapping[str, str]) -> tuple[list[Gpu] | None, TensorFlowInfo | None, str]:
    """Asks nvidia-smi and the TF1 interpreter; returns what they said (None when a tool is missing) and notes."""
    smi = shutil.which("nvidia-smi", path=env.get("PATH"))
    gpus = None
    if smi:
        out = subprocess.run(
            [smi, NVIDIA_SMI_QUERY, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        gpus = parse_nvidia_smi(out.stdout) if out.returncode == 0 else []
    python = env.get("DST_TF_PYTHON") or "python3"
    try:
        out = subprocess.run(
            [python, "-c", TF_PROBE], capture_output=True, text=True, env=dict(env), timeout=PROBE_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return gpus, None, f"TensorFlow probe did not run: {exc}"
    if out.returncode != 0:
        return (
            gpus,
            None,
            f"TensorFlow probe failed: {out.stderr.strip().splitlines()[-1:] or out.returncode}",
        )
    return gpus, parse_tf_probe(out.stdout), ""


def verify(spec: Mapping[str, Any], env: Mapping[str, str] = os.environ) -> list[Gpu]:
    """Raises InvalidInput (never retried) or TransientError (another attempt/node may do) on a finding."""
    requested = int((spec.get("resources") or {}).get("gpus", 1))
    if requested == 0 or env.get("DST_GPU_CHECK", "on") == "off":
        return []
    gpus, tf, note = probe(env)
    if tf is None:
        raise TransientError(f"GPU check: {note}")
    problems = findings(requested, gpus, tf)
    if any(p.permanent for p in problems):
        raise InvalidInput("GPU check: " + "; ".join(p.message for p in problems))
    if problems:
        raise TransientError("GPU check: " + "; ".join(p.message for p in problems))
    return gpus or []
