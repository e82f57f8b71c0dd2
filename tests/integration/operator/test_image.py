"""The built operator image (`make images`) against the local control plane: read-only, its own non-root user.

Skips with the reason when the image has not been built (`make images` is not part of `make test`).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import images
from tests.images import containers

from .conftest import Env, OperatorProcess, base_spec, running_operator

pytestmark = pytest.mark.cluster
KUBECONFIG_IN_CONTAINER = "/etc/deepspeech-operator/kubeconfig"


class ImageOperatorProcess(OperatorProcess):
    """The operator image under podman: --read-only, the image's USER, the host network (the API server listens
    on the host's 127.0.0.1), the kubeconfig mounted read-only."""

    def start(self) -> None:
        from tests.cluster.processes import free_port

        self.metrics_port, self.liveness_port = free_port(), free_port()
        readable = self.log.parent / "kubeconfig"
        shutil.copyfile(self.kubeconfig, readable)
        readable.chmod(
            0o644
        )  # the image's user (65532) reads it; the copy lives in the test's private tmp dir
        self.name = f"dso-operator-test-{secrets.token_hex(4)}"
        argv = ["podman", "run", "--rm", "--name", self.name, "--read-only", "--network", "host"]
        argv += [
            "-v",
            f"{readable}:{KUBECONFIG_IN_CONTAINER}:ro",
            "-e",
            f"KUBECONFIG={KUBECONFIG_IN_CONTAINER}",
        ]
        argv += [images.OPERATOR_IMAGE, "--namespaces", self.namespace]
        argv += ["--metrics-port", str(self.metrics_port), "--liveness-port", str(self.liveness_port)]
        out = self.log.open("a")
        self.proc = subprocess.Popen(argv, env=containers.env(), stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            subprocess.run(
                ["podman", "stop", "-t", "20", self.name], env=containers.env(), capture_output=True
            )
            self.proc.wait(timeout=60)


@pytest.fixture
def image_env(k8s: Any, crd: None, namespace: str, tmp_path: Path) -> Iterator[Env]:
    if reason := images.missing_reason(images.OPERATOR_IMAGE):
        pytest.skip(reason)
    op = ImageOperatorProcess(k8s.kubeconfig, namespace, tmp_path / "operator.log")
    with running_operator(op, k8s, namespace) as started:
        yield started


def test_operator_image_runs_read_only_as_its_user_and_reconciles_a_cr_to_a_job(image_env):
    env = image_env
    env.hold_pods()
    env.apply("en", base_spec(preflight=False))
    job = env.wait(
        "the Job of run g1", lambda: next((j for j in env.jobs() if j.metadata.name == "en-g1-train"), None)
    )
    assert job.metadata.owner_references[0].name == "en"
    env.wait("the CR reports its run", lambda: env.status("en").get("run", {}).get("id") == "g1")
    user = subprocess.run(
        ["podman", "exec", env.op.name, "id", "-u"], env=containers.env(), capture_output=True, text=True
    )
    assert user.stdout.strip() == "65532", user.stderr
    assert "Read-only file system" not in env.op.text()
