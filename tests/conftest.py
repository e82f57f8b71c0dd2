"""Session fixtures shared by every test: the local cluster (or an external one) and the S3 server.

DSO_TEST_CLUSTER=external uses the cluster in KUBECONFIG instead of starting one; the simulated nodes
are registered there by the same node agent, and S3 comes from AWS_* variables when AWS_ENDPOINT_URL is
set (otherwise a local SeaweedFS is started). DSO_KEEP_CLUSTER=1 leaves a cluster this session started
running for the next one.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cluster import controlplane
from tests.cluster.config import REPO, STATE_DIR

CORPUS_BUCKET = "e2e"


def pytest_configure(config: pytest.Config) -> None:
    # A runner that starts the suite as a background job leaves SIGINT ignored, and children inherit that.
    # Tests that Ctrl-C a child (prepare, the DeepSpeech stand-in) need it delivered: a handled signal is
    # reset to the default in children at exec, so they get a normal KeyboardInterrupt.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class Cluster:
    kubeconfig: Path
    s3_env: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["kubectl", *args], env=self.env, input=input, capture_output=True, text=True, check=check
        )

    def api_client(self):  # kubernetes.client.ApiClient, imported lazily
        from kubernetes import config

        return config.new_client_from_config(str(self.kubeconfig))


def _external_cluster() -> Cluster:
    kubeconfig = Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config"))
    if os.environ.get("AWS_ENDPOINT_URL"):
        s3_env = {k: os.environ[k] for k in os.environ if k.startswith("AWS_")}
    else:
        raise pytest.UsageError("DSO_TEST_CLUSTER=external needs AWS_ENDPOINT_URL and credentials for S3")
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    if not controlplane.processes.recorded(STATE_DIR).get("nodeagent"):
        controlplane.start_nodeagent(STATE_DIR, kubeconfig)
    controlplane.wait_nodes_ready(kubeconfig)
    return Cluster(kubeconfig, s3_env)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    started_here = False
    if os.environ.get("DSO_TEST_CLUSTER") == "external":
        result = _external_cluster()
    else:
        started_here = not controlplane.healthy()
        info = controlplane.up()
        result = Cluster(info.kubeconfig, info.s3_env)
    bin_dir = REPO / ".venv" / "bin"
    result.env = {
        **os.environ,
        "KUBECONFIG": str(result.kubeconfig),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    yield result
    if started_here and not os.environ.get("DSO_KEEP_CLUSTER"):
        controlplane.down()


@pytest.fixture(scope="session")
def s3_env(cluster: Cluster) -> dict[str, str]:
    return cluster.s3_env


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting: the namespace controller finishes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


CRD = REPO / "manifests" / "crd" / "training.deepspeech.dev_deepspeechtrainings.yaml"


@pytest.fixture
def crd(cluster: Cluster) -> None:
    """The DeepSpeechTraining CRD, installed (or updated) from the generated manifest and Established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/deepspeechtrainings.training.deepspeech.dev",
    )


@pytest.fixture(scope="session")
def corpus(s3_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """s3://e2e/corpus/{train,dev,test}.csv + alphabet.txt from espeak-ng speech, made by the real
    `deepspeech-trainer prepare` (6/3/3 clips); returns the prefix."""
    from tests.cluster.controlplane import s3_client
    from tests.e2e.dataset import prepare_to_s3, speak_pairs

    s3 = s3_client(s3_env)
    if CORPUS_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=CORPUS_BUCKET)
    source = speak_pairs(tmp_path_factory.mktemp("speech"))
    prefix = f"s3://{CORPUS_BUCKET}/corpus"
    prepare_to_s3(source, prefix, s3_env, REPO / ".venv" / "bin" / "deepspeech-trainer")
    return prefix
