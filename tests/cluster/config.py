"""Versions, cache locations and state paths of the local test cluster."""

from __future__ import annotations

import os
import re
from pathlib import Path

K8S_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.14"

REPO = Path(__file__).resolve().parents[2]
GO_MODULES = Path(__file__).resolve().parent / "go"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "deepspeech-operator"
STATE_DIR = Path(os.environ.get("DSO_CLUSTER_DIR", REPO / ".cluster"))

# Simulated nodes: two GPU nodes as in a small cloud node pool, one CPU node for preflight pods.
GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
GPU_NODES = ("gpu-node-0", "gpu-node-1")
CPU_NODES = ("cpu-node-0",)
# A node whose pods really run, as local processes (tests/cluster/procrunner.py). Its extra taint keeps
# every pod off it except those that tolerate it; a namespace annotation (SIM_RUNTIME) makes pods on any
# simulated node run as processes too.
PROCESS_NODES = ("proc-gpu-0",)
RUNTIME_LABEL = "sim.deepspeech.dev/runtime"
PROCESS_TAINT = {"key": RUNTIME_LABEL, "value": "process", "effect": "NoSchedule"}
GPUS_PER_NODE = 8

# Annotations the node agent obeys (on the pod, or on its namespace as a default for every pod in it).
SIM_PREFIX = "sim.deepspeech.dev/"
SIM_HOLD = SIM_PREFIX + "hold"  # "true": stay Running until an exit-code annotation arrives
SIM_EXIT_CODE = SIM_PREFIX + "exit-code"  # terminate the pod's containers with this code
SIM_RUN_SECONDS = SIM_PREFIX + "run-seconds"  # how long a pod runs before exiting (default 1)
SIM_REASON = SIM_PREFIX + "reason"  # terminated.reason, e.g. OOMKilled
SIM_MESSAGE = SIM_PREFIX + "termination-message"  # terminated.message
SIM_RUNTIME = SIM_PREFIX + "runtime"  # "process": run the pod's containers as local processes
SIM_IMAGE_ENV = SIM_PREFIX + "image-env."  # namespace annotation prefix: extra image ENV (stand-in knobs)


def image_env(image: str) -> dict[str, str]:
    """The ENV an image would bring. The repository's .venv stands in for the image's software; for the
    trainer image the DST_* settings are read from Dockerfile.trainer itself, so pods see the real image's
    paths (a DeepSpeech stand-in is swapped in per namespace with SIM_IMAGE_ENV annotations)."""
    env = {
        "PATH": f"{REPO / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    if "trainer" in image:
        from tests.unit.packaging.dockerfile import env_of, parse

        env |= {
            k: v for k, v in env_of(parse(REPO / "Dockerfile.trainer").final).items() if k.startswith("DST_")
        }
        tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
        if re.fullmatch(r"\d+\.\d+\.\d+", tag):
            env["STANDIN_VERSION"] = tag  # the release the image holds, for a stand-in if one is swapped in
    return env


def standin_image_env() -> dict[str, str]:
    """Namespace annotations that make trainer pods run the DeepSpeech stand-in (tests/standin/)."""
    return {
        SIM_IMAGE_ENV + "DST_TF_PYTHON": str(REPO / ".venv" / "bin" / "python"),
        SIM_IMAGE_ENV + "DST_DEEPSPEECH_DIR": str(REPO / "tests" / "standin"),
        # No TensorFlow and no GPU here: the trainer's GPU check (gpucheck.py) cannot pass, so it is off.
        SIM_IMAGE_ENV + "DST_GPU_CHECK": "off",
        # Tests watch checkpoints reach S3 epoch by epoch: no minimum gap between epoch-end syncs.
        SIM_IMAGE_ENV + "DST_EPOCH_SYNC_MIN_S": "0",
    }


def engine_image_env(engine_env: dict[str, str]) -> dict[str, str]:
    """Namespace annotations that make trainer pods run a real engine of this machine (tests/engines)."""
    # CPU-only TensorFlow and no GPU here: the trainer's GPU check cannot pass, so it is off.
    # Tests watch checkpoints reach S3 epoch by epoch: no minimum gap between epoch-end syncs.
    knobs = {"DST_GPU_CHECK": "off", "DST_EPOCH_SYNC_MIN_S": "0"}
    return {SIM_IMAGE_ENV + k: v for k, v in {**engine_env, **knobs}.items()}
