"""The built trainer image (`make images`) under podman: --help, plan, and a real tiny Coqui STT training
against the local S3 that publishes a model. Read-only root, the image's own user (1000), /work mounted.

Skips with the reason when the image has not been built (`make images` is not part of `make test`).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from tests import images
from tests.cluster.controlplane import s3_client
from tests.images import containers
from tests.integration.trainer.test_pid1 import WORKLOAD
from tests.integration.trainer.test_real_training import TINY, keys

pytestmark = [pytest.mark.cluster, pytest.mark.real_training]
ENGINE = "coqui-stt-1.4.0"
IMAGE = images.trainer_image(ENGINE)
SPEC_IN_CONTAINER = "/etc/deepspeech/spec.json"


@pytest.fixture
def image() -> str:
    if reason := images.missing_reason(IMAGE):
        pytest.skip(reason)
    return IMAGE


def podman_run(
    image: str,
    *args: str,
    mounts: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    argv = ["podman", "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "host"]
    for mount in mounts:
        argv += ["-v", mount]
    for key, value in (env or {}).items():
        argv += ["-e", f"{key}={value}"]
    return subprocess.run(
        [*argv, image, *args], env=containers.env(), capture_output=True, text=True, timeout=timeout
    )


def spec_file(tmp_path: Path, corpus: str, out: str) -> Path:
    spec = {
        "deepspeech": {"engine": "coqui-stt", "version": "1.4.0"},
        "data": {
            "train": [f"{corpus}/train.csv"],
            "dev": [f"{corpus}/dev.csv"],
            "test": [f"{corpus}/test.csv"],
            "alphabet": f"{corpus}/alphabet.txt",
        },
        "training": {**TINY, "epochs": 1},
        "resources": {"gpus": 0},
        "output": {"uri": out},
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    path.chmod(0o644)
    return path


def work_dir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    os.chown(work, 1000, 1000)  # the image's user
    return work


def test_help_names_the_commands(image):
    result = podman_run(image, "--help")
    assert result.returncode == 0, result.stderr
    for command in ("plan", "preflight", "train"):
        assert command in result.stdout


def test_plan_runs_the_engine_under_the_image_interpreter(image, tmp_path):
    spec = spec_file(tmp_path, "s3://corpus/x", "s3://models/x/")
    result = podman_run(
        image, "plan", "--spec", SPEC_IN_CONTAINER, "--json", mounts=(f"{spec}:{SPEC_IN_CONTAINER}:ro",)
    )
    assert result.returncode == 0, result.stderr
    invocations = json.dumps(json.loads(result.stdout))
    assert "/usr/bin/python3" in invocations and "coqui_stt_training" in invocations, invocations[:2000]


def test_trains_a_tiny_model_and_publishes_it(image, corpus, s3_env, tmp_path):
    out = f"{corpus.rsplit('/', 1)[0]}/models-image-{secrets.token_hex(4)}/"
    spec = spec_file(tmp_path, corpus, out)
    work = work_dir(tmp_path)
    env = {
        **s3_env,
        "DST_GPU_CHECK": "off",
        "DST_RUN_ID": "g1",
        "DST_TERMINATION_LOG": "/work/termination",
        "XDG_DATA_HOME": "/work/xdg",
    }
    result = podman_run(
        image,
        "train",
        "--spec",
        SPEC_IN_CONTAINER,
        mounts=(f"{spec}:{SPEC_IN_CONTAINER}:ro", f"{work}:/work"),
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    message = json.loads((work / "termination").read_text())
    assert message["ok"] is True and message["epochsDone"] == 1
    published = keys(s3_client(s3_env), message["model"]["uri"])
    assert {"output_graph.tflite", "test_results.json", "alphabet.txt", "SHA256SUMS"} <= published
    assert message["model"]["smokeTest"]["ok"] is True, message["model"]["smokeTest"]


def test_in_the_container_pid1_reaps_orphans_and_forwards_its_status(image, tmp_path):
    """The image's supervisor Python as the container's PID 1 (podman gives the container its own PID
    namespace, as the kubelet does): the trainer forks an init that reaps what it orphans."""
    script = tmp_path / "workload.py"
    script.write_text(WORKLOAD)
    script.chmod(0o644)
    result = subprocess.run(
        ["podman", "run", "--rm", "--read-only", "--entrypoint", "/opt/trainer/bin/python", "-v",
         f"{script}:/workload.py:ro", image, "/workload.py"],
        env=containers.env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 7, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["pid"] != 1 and seen["orphan"] == "gone", seen
