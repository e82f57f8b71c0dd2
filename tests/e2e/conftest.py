"""End-to-end fixtures: a namespace whose pods run as real processes, a real speech dataset in S3 made by
`deepspeech-trainer prepare`, an S3 credentials Secret, and the real operator process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.config import SIM_IMAGE_ENV, SIM_RUNTIME, standin_image_env
from tests.integration.chart.conftest import helm  # noqa: F401 - the chart tests' install fixture
from tests.integration.operator.conftest import Env, OperatorProcess


@pytest.fixture
def process_namespace(cluster: Any, namespace: str, s3_env: dict[str, str]) -> str:
    """A namespace where every pod really runs as a local process, with the S3 credentials Secret."""
    cluster.kubectl("annotate", "namespace", namespace, f"{SIM_RUNTIME}=process")
    # DeepSpeech is replaced by the stand-in (it trains nothing); its epochs take a moment, so progress
    # can be watched while a run is in flight.
    knobs = {f"{SIM_IMAGE_ENV}STANDIN_EPOCH_SECONDS": "1.5", **standin_image_env()}
    cluster.kubectl("annotate", "namespace", namespace, *(f"{k}={v}" for k, v in knobs.items()))
    cluster.kubectl(
        "-n", namespace, "create", "secret", "generic", "s3-credentials",
        f"--from-literal=AWS_ACCESS_KEY_ID={s3_env['AWS_ACCESS_KEY_ID']}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={s3_env['AWS_SECRET_ACCESS_KEY']}",
    )  # fmt: skip
    return namespace


@pytest.fixture
def e2e(cluster: Any, process_namespace: str, crd: None, tmp_path: Path) -> Iterator[Env]:
    """The operator (a local process with the admin kubeconfig) watching a process namespace."""
    op = OperatorProcess(cluster.kubeconfig, process_namespace, tmp_path / "operator.log")
    op.start()
    try:
        yield Env(cluster, process_namespace, op)
    finally:
        op.stop()
