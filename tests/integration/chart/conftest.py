"""Fixtures for the chart's tests on the local control plane: the CRD, Helm releases, ServiceAccount identities.

The CRD is cluster-scoped and shared with the other integration tests, so it is applied the way they apply it
(kubectl, server-side) and every release here is installed with crds.enabled=false; the chart's CRD template is
checked byte for byte offline (tests/unit/chart) and by server-side dry-run here.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import pytest

from tests.unit.chart.chartlib import chart, documents

CRD_NAME = "deepspeechtrainings.training.deepspeech.dev"


@dataclass
class Release:
    name: str
    namespace: str
    manifest: list[dict[str, Any]]
    seconds: float  # how long `helm install` took

    def objects(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.manifest if o["kind"] == kind]

    @property
    def service_account(self) -> str:
        return self.objects("Deployment")[0]["spec"]["template"]["spec"]["serviceAccountName"]


@pytest.fixture
def helm(cluster: Any, namespace: str) -> Iterator[Callable[..., Release]]:
    """install(values) -> Release, into the test's namespace; every release is uninstalled afterwards."""
    config = helm_python.Config(kubeconfig_path=cluster.kubeconfig, namespace=namespace)
    installed: list[str] = []

    def install(values: dict[str, Any]) -> Release:
        name = f"dso-{secrets.token_hex(3)}"  # cluster-scoped objects carry the release name: keep it unique
        started = time.monotonic()
        result = config.install(chart(), name, values, namespace=namespace, timeout=120)
        installed.append(name)
        return Release(name, namespace, documents(result["manifest"]), time.monotonic() - started)

    yield install
    for name in installed:
        config.uninstall(name, ignore_not_found=True, timeout=60)
    config.close()


def token_kubeconfig(cluster: Any, namespace: str, service_account: str, directory: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount with a TokenRequest token (kubectl create token);
    server and CA come from the admin kubeconfig, nothing else of it is kept."""
    token = cluster.kubectl(
        "create", "token", service_account, "-n", namespace, "--duration=1h"
    ).stdout.strip()
    admin = json.loads(
        cluster.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
    )
    server = admin["clusters"][0]["cluster"]["server"]
    ca = admin["clusters"][0]["cluster"]["certificate-authority-data"]
    base64.b64decode(ca, validate=True)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [
            {"name": "sa", "context": {"cluster": "local", "user": service_account, "namespace": namespace}}
        ],
        "current-context": "sa",
    }
    path = directory / f"{service_account}.kubeconfig"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def can_i(cluster: Any, service_account: str, namespace: str, verb: str, resource: str, *where: str) -> bool:
    """`kubectl auth can-i` as the ServiceAccount (impersonated by the admin): True for "yes"."""
    result = cluster.kubectl(
        "auth",
        "can-i",
        verb,
        resource,
        f"--as=system:serviceaccount:{namespace}:{service_account}",
        *where,
        check=False,
    )
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl auth can-i: {result.stdout}{result.stderr}"
    return answer == "yes"


def dry_run_apply(cluster: Any, objects: list[dict[str, Any]]) -> subprocess.CompletedProcess:
    """Server-side apply in dry-run mode (admission, schema, CEL and defaulting run; nothing is stored)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
        json.dump({"apiVersion": "v1", "kind": "List", "items": objects}, handle)
        handle.flush()
        return cluster.kubectl(
            "apply",
            "--server-side",
            "--dry-run=server",
            "--force-conflicts",
            "--field-manager=chart-test",
            "-f",
            handle.name,
            check=False,
        )
