"""Fixtures for the operator's integration tests on the local control plane (tests/conftest.py).

The operator runs as a subprocess (`python -m deepspeech_operator`), scoped to the test's namespace so
tests never see each other's objects. Waiting is always "poll a condition until a deadline".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.processes import free_port, wait_until

REPO = Path(__file__).resolve().parents[3]
CRD = REPO / "manifests" / "crd" / "training.deepspeech.dev_deepspeechtrainings.yaml"
GROUP, VERSION, PLURAL = "training.deepspeech.dev", "v1alpha1", "deepspeechtrainings"
HOLD = "sim.deepspeech.dev/hold"
EXIT_CODE = "sim.deepspeech.dev/exit-code"
MESSAGE = "sim.deepspeech.dev/termination-message"
REASON = "sim.deepspeech.dev/reason"


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60, log: Path | None = None) -> Any:
    """Poll `probe` until it returns something truthy; fail naming `what` (and the operator log tail)."""
    try:
        return wait_until(probe, timeout, what, interval=0.25)
    except TimeoutError as exc:
        tail = ""
        if log and log.exists():
            tail = "\n--- operator log tail ---\n" + "\n".join(log.read_text().splitlines()[-40:])
        pytest.fail(f"{exc}{tail}")


class OperatorProcess:
    """`python -m deepspeech_operator` as a subprocess. By default configured with flags for one namespace;
    with `config_env` configured only by that environment (e.g. exactly a chart Deployment's env)."""

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        log: Path,
        config_env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.kubeconfig, self.namespace, self.log, self.config_env = kubeconfig, namespace, log, config_env
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None
        self.metrics_port = 0
        self.liveness_port = 0

    def start(self) -> None:
        argv = [sys.executable, "-m", "deepspeech_operator"]
        if self.config_env is None:
            self.metrics_port, self.liveness_port = free_port(), free_port()
            argv += ["--namespaces", self.namespace, "--metrics-port", str(self.metrics_port)]
            argv += ["--liveness-port", str(self.liveness_port), *self.extra_args]
            env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        else:
            inherited = {
                k: v for k, v in os.environ.items() if not k.startswith(("DST_OPERATOR_", "KUBERNETES_"))
            }
            env = {**inherited, **self.config_env, "KUBECONFIG": str(self.kubeconfig)}
        out = self.log.open("a")
        self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as an OOM kill or node loss would do."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class Env:
    """What a test needs: kubectl, typed API clients, the operator, helpers."""

    def __init__(self, cluster: Any, namespace: str, op: OperatorProcess) -> None:
        from kubernetes import client

        self.cluster, self.ns, self.op = cluster, namespace, op
        api_client = cluster.api_client()
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess:
        return self.cluster.kubectl(*args, check=check, input=input)

    def hold_pods(self) -> None:
        self.kubectl("annotate", "namespace", self.ns, f"{HOLD}=true", "--overwrite")

    def apply(self, name: str, spec: dict[str, Any], dry_run: bool = False) -> subprocess.CompletedProcess:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DeepSpeechTraining",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": spec,
        }
        args = ["apply", "--server-side", "--field-manager=test", "-f", "-"]
        if dry_run:
            args.append("--dry-run=server")
        return self.kubectl(*args, check=not dry_run, input=json.dumps(body))

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name, {"spec": spec})

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def condition(self, name: str, ctype: str) -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions") or [] if c["type"] == ctype), {})

    def jobs(self) -> list[Any]:
        return self.batch.list_namespaced_job(self.ns).items

    def job_names(self) -> list[str]:
        return sorted(j.metadata.name for j in self.jobs())

    def pods(self, job: str | None = None) -> list[Any]:
        selector = (
            f"batch.kubernetes.io/job-name={job}"
            if job
            else "app.kubernetes.io/managed-by=deepspeech-operator"
        )
        return self.core.list_namespaced_pod(self.ns, label_selector=selector).items

    def running_pod(self, job: str) -> Any:
        return next(
            (p for p in self.pods(job) if p.status.phase == "Running" and not p.metadata.deletion_timestamp),
            None,
        )

    def finish_pod(self, pod: str, code: int, message: dict | None = None, reason: str | None = None) -> None:
        args = ["annotate", "pod", "-n", self.ns, pod, f"{EXIT_CODE}={code}", "--overwrite"]
        if message is not None:
            args.append(f"{MESSAGE}={json.dumps(message)}")
        if reason:
            args.append(f"{REASON}={reason}")
        self.kubectl(*args)

    def wait(self, what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
        return wait_for(what, probe, timeout, self.op.log)

    def wait_phase(self, name: str, phase: str, timeout: float = 60) -> dict[str, Any]:
        return self.wait(
            f"{name} phase {phase}", lambda: (s := self.status(name)).get("phase") == phase and s, timeout
        )

    def events(self, name: str) -> list[str]:
        items = self.core.list_namespaced_event(self.ns, field_selector=f"involvedObject.name={name}").items
        return [e.reason for e in items]


@pytest.fixture
def k8s(request: pytest.FixtureRequest) -> Any:
    try:
        return request.getfixturevalue("cluster")
    except pytest.FixtureLookupError:
        pytest.skip("no `cluster` fixture (tests/conftest.py): the local control plane is not available")


@pytest.fixture
def operator_args() -> list[str]:
    """Extra operator flags; a test module overrides this fixture to change them."""
    return []


@pytest.fixture
def env(
    k8s: Any, crd: None, request: pytest.FixtureRequest, tmp_path: Path, operator_args: list[str]
) -> Iterator[Env]:
    namespace = request.getfixturevalue("namespace")
    op = OperatorProcess(
        k8s.kubeconfig, namespace, tmp_path / "operator.log", extra_args=tuple(operator_args)
    )
    with running_operator(op, k8s, namespace) as started:
        yield started


@contextlib.contextmanager
def running_operator(op: OperatorProcess, cluster: Any, namespace: str) -> Iterator[Env]:
    """`op` started, as the Env of `namespace`; stopped however the test ends."""
    op.start()
    try:
        yield Env(cluster, namespace, op)
    finally:
        op.stop()


def base_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "data": {"train": ["s3://corpus/cv-en/train.csv"], "dev": ["s3://corpus/cv-en/dev.csv"]},
        "training": {"epochs": 3, "learningRate": 0.0001},
        "output": {"uri": "s3://models/en-finetune/"},
        "resources": {"gpus": 1, "cpu": "1", "memory": "1Gi", "sharedMemory": "256Mi"},
        "storage": {"endpoint": "http://127.0.0.1:9000", "secretRef": {"name": "s3-credentials"}},
    }
    spec.update(overrides)
    return spec
