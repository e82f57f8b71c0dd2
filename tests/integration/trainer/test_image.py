"""The built trainer images (`make images`) under podman: --help, plan, the engine under the image's own
interpreter, and a real tiny training against the local S3 that publishes a model. Read-only root, the image's
own user (1000), /work mounted. Every engine image gets the same checks: Coqui STT 1.4.0 and DeepSpeech 0.9.3
(Python 3.7 base) and DeepSpeech 0.6.0 (Python 3.6 base, TensorFlow 1.14 installed over the base's).

Each skips with the reason when its image has not been built (`make images` is not part of `make test`;
DSO_IMAGE_ENGINES chooses which trainer images it builds).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from tests import engines, images
from tests.cluster.controlplane import s3_client
from tests.images import containers
from tests.integration.trainer.test_pid1 import WORKLOAD
from tests.integration.trainer.test_real_training import TINY, keys

pytestmark = [pytest.mark.cluster, pytest.mark.real_training]
ENGINES = ("coqui-stt-1.4.0", "deepspeech-0.9.3", "deepspeech-0.6.0")
SPEC_IN_CONTAINER = "/etc/deepspeech/spec.json"


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def image(engine: str) -> str:
    name = images.trainer_image(engine)
    if reason := images.missing_reason(name):
        pytest.skip(reason)
    return name


def podman_run(
    image: str,
    *args: str,
    mounts: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    entrypoint: list[str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    argv = ["podman", "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "host"]
    if entrypoint is not None:
        argv += ["--entrypoint", json.dumps(entrypoint)]
    for mount in mounts:
        argv += ["-v", mount]
    for key, value in (env or {}).items():
        argv += ["-e", f"{key}={value}"]
    return subprocess.run(
        [*argv, image, *args], env=containers.env(), capture_output=True, text=True, timeout=timeout
    )


def spec_file(tmp_path: Path, engine: str, corpus: str, out: str) -> Path:
    name, version = engines.split_name(engine)
    spec = {
        "deepspeech": {"engine": name, "version": version},
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


def plan(image: str, engine: str, tmp_path: Path) -> list[dict]:
    spec = spec_file(tmp_path, engine, "s3://corpus/x", "s3://models/x/")
    result = podman_run(
        image, "plan", "--spec", SPEC_IN_CONTAINER, "--json", mounts=(f"{spec}:{SPEC_IN_CONTAINER}:ro",)
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["invocations"]


def test_plan_runs_the_engine_under_the_image_interpreter(image, engine, tmp_path):
    invocations = plan(image, engine, tmp_path)
    entry = {
        "coqui-stt-1.4.0": ["-m", "coqui_stt_training.train"],
        "deepspeech-0.9.3": ["-m", "deepspeech_training.train"],
        "deepspeech-0.6.0": ["/DeepSpeech/DeepSpeech.py"],
    }[engine]
    # Coqui STT exports twice (TFLite and protobuf graph), DeepSpeech once.
    assert {i["purpose"] for i in invocations} == {"train", "test", "export"}
    for invocation in invocations:
        assert invocation["argv"][:2] == ["/usr/bin/python3", "-u"], invocation
        assert invocation["argv"][2 : 2 + len(entry)] == entry, invocation


def test_the_planned_engine_starts_in_the_image(image, engine, tmp_path):
    """The planned command lines under the image's interpreter, as far as parsing their flags: the engine's
    TensorFlow and dependencies import under the base's Python (3.6 for DeepSpeech 0.6.0), and DeepSpeech
    (absl's --only_check_args) accepts every flag the trainer passes it. Coqui STT has no such mode: its help."""
    invocations = plan(image, engine, tmp_path)
    # DeepSpeech's flag validators open the staged alphabet: stand-ins for what `train` stages into /work/data.
    work = work_dir(tmp_path)
    (work / "data").mkdir()
    for arg in {a.split("=", 1)[-1] for i in invocations for a in i["argv"]}:
        if arg.startswith("/work/data/"):
            (work / arg.removeprefix("/work/")).write_text("a\nb\n" if arg.endswith(".txt") else "")
    for invocation in invocations:
        argv = invocation["argv"]
        if engine.startswith("deepspeech"):
            command = [*argv, "--only_check_args"]
        else:
            command = [*argv[: next(i for i, arg in enumerate(argv) if arg.startswith("--"))], "--help"]
        result = podman_run(image, *command[1:], entrypoint=command[:1], mounts=(f"{work}:/work:ro",))
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{invocation['purpose']}: {output[-4000:]}"
        assert "Traceback" not in output, output[-4000:]
        if not engine.startswith("deepspeech"):
            assert "n_hidden" in output, output[-4000:]


def test_trains_a_tiny_model_and_publishes_it(image, engine, corpus, s3_env, tmp_path):
    out = f"{corpus.rsplit('/', 1)[0]}/models-image-{secrets.token_hex(4)}/"
    spec = spec_file(tmp_path, engine, corpus, out)
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
    model_file = "output_graph.tflite" if engine.startswith("coqui-stt") else "output_graph.pb"
    assert {model_file, "test_results.json", "alphabet.txt", "SHA256SUMS"} <= published
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
