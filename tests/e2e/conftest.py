"""End-to-end fixtures: a namespace whose pods run as real processes, a real speech dataset in S3 made by
`deepspeech-trainer prepare`, an S3 credentials Secret, and the real operator process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.config import SIM_IMAGE_ENV, SIM_RUNTIME, standin_image_env
from tests.integration.chart.conftest import helm  # noqa: F401 - the chart tests' install fixture
from tests.integration.operator.conftest import Env, OperatorProcess, running_operator


@pytest.fixture
def process_namespace(cluster: Any, namespace: str, s3_env: dict[str, str]) -> str:
    """A namespace where every pod really runs as a local process, with the S3 credentials Secret."""
    # DeepSpeech is replaced by the stand-in (it trains nothing); its epochs take a moment, so progress
    # can be watched while a run is in flight.
    knobs = {f"{SIM_IMAGE_ENV}STANDIN_EPOCH_SECONDS": "1.5", **standin_image_env()}
    return prepare_process_namespace(cluster, namespace, s3_env, knobs)


def prepare_process_namespace(
    cluster: Any, namespace: str, s3_env: dict[str, str], image_env: dict[str, str]
) -> str:
    """Pods of the namespace run as local processes with `image_env` (annotations) as their image's ENV;
    the S3 credentials Secret `s3-credentials` is there."""
    annotations = {SIM_RUNTIME: "process", **image_env}
    cluster.kubectl("annotate", "namespace", namespace, *(f"{k}={v}" for k, v in annotations.items()))
    cluster.kubectl(
        "-n", namespace, "create", "secret", "generic", "s3-credentials",
        f"--from-literal=AWS_ACCESS_KEY_ID={s3_env['AWS_ACCESS_KEY_ID']}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={s3_env['AWS_SECRET_ACCESS_KEY']}",
    )  # fmt: skip
    return namespace


def evict_after_epochs(e2e: Env, name: str, epochs: int, timeout: float) -> tuple[str, Any]:
    """Wait until `epochs` epochs of the run are in S3, then evict its training pod through the Eviction
    API; returns the Job name and the evicted pod."""
    from kubernetes import client

    e2e.wait(
        f"{epochs} epochs in S3",
        lambda: (e2e.status(name).get("checkpoint") or {}).get("epoch", 0) >= epochs,
        timeout=timeout,
    )
    job = e2e.status(name)["run"]["jobName"]
    pod = e2e.running_pod(job)
    e2e.core.create_namespaced_pod_eviction(
        pod.metadata.name,
        e2e.ns,
        client.V1Eviction(metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=e2e.ns)),
    )
    return job, pod


@pytest.fixture
def e2e(cluster: Any, process_namespace: str, crd: None, tmp_path: Path) -> Iterator[Env]:
    """The operator (a local process with the admin kubeconfig) watching a process namespace."""
    op = OperatorProcess(cluster.kubeconfig, process_namespace, tmp_path / "operator.log")
    with running_operator(op, cluster, process_namespace) as started:
        yield started
