"""Starts and stops the local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
the simulated-node agent and a SeaweedFS S3 server, all on 127.0.0.1.

`up()` is idempotent and returns when everything is ready; `down()` stops every process it started
(by recorded PID) and removes the state directory.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import ssl
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.cluster import build, pki, processes
from tests.cluster.config import REPO, STATE_DIR

# Reverse of start order: dependents stop before what they depend on.
STOP_ORDER = ("s3", "nodeagent", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")
S3_ACCESS_KEY = "deepspeech-test"
S3_REGION = "us-east-1"


@dataclass(frozen=True)
class ClusterInfo:
    state_dir: Path
    kubeconfig: Path
    s3_env: dict[str, str]


def _tls_context(state: Path, client_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(state / "pki" / "ca.crt"))
    if client_cert:
        ctx.load_cert_chain(str(state / "pki" / "admin.crt"), str(state / "pki" / "admin.key"))
    return ctx


def _get(url: str, context: ssl.SSLContext | None = None) -> str:
    if context is None and url.startswith("https://"):
        context = ssl._create_unverified_context()  # component health ports use self-signed certs
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        return response.read().decode()


def _write_kubeconfig(state: Path, server: str) -> Path:
    def b64(name: str) -> str:
        return base64.b64encode((state / "pki" / name).read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")}}
        ],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")},
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
        "current-context": "local",
    }
    path = state / "kubeconfig"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML; no extra dependency needed here
    path.chmod(0o600)
    return path


def _write_s3_env(state: Path, endpoint: str, secret: str) -> dict[str, str]:
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": S3_REGION,
    }
    (state / "s3.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return env


def read_s3_env(state: Path = STATE_DIR) -> dict[str, str]:
    lines = (state / "s3.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def _start_etcd(state: Path, binary: Path, ports: dict[str, int]) -> None:
    client, peer = f"http://127.0.0.1:{ports['etcd']}", f"http://127.0.0.1:{ports['etcd_peer']}"
    processes.start(
        "etcd",
        [
            str(binary), "--name=node0", f"--data-dir={state / 'etcd'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=node0={peer}", "--unsafe-no-fsync=true", "--log-level=warn",
            f"--listen-metrics-urls=http://127.0.0.1:{ports['etcd_metrics']}",
        ],
        state,
    )  # fmt: skip
    processes.wait_until(lambda: '"health":"true"' in _get(f"{client}/health"), 60, "etcd /health")


def _start_apiserver(state: Path, binary: Path, ports: dict[str, int]) -> str:
    p = state / "pki"
    processes.start(
        "kube-apiserver",
        [
            str(binary), f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={ports['apiserver']}",
            f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}", "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p / 'sa.pub'}", f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=true",
            "--endpoint-reconciler-type=none",
            # As on clusters that enforce it (e.g. OpenShift): setting blockOwnerDeletion on a child needs
            # `update` on the owner's finalizers subresource, so a chart lacking it fails here too.
            "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
            f"--kubelet-certificate-authority={p / 'ca.crt'}",
            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--audit-log-path={state / 'logs' / 'audit.log'}", f"--audit-policy-file={_audit_policy(state)}",
            "--audit-log-maxsize=200", "--audit-log-maxbackup=1",
        ],
        state,
    )  # fmt: skip
    server = f"https://127.0.0.1:{ports['apiserver']}"
    ctx = _tls_context(state, client_cert=True)
    processes.wait_until(lambda: _get(f"{server}/readyz", ctx) == "ok", 120, "kube-apiserver /readyz")
    return server


def _audit_policy(state: Path) -> Path:
    # Metadata-level audit of writes only: lets benchmarks count API requests per run without
    # filling the disk with every watch and read.
    policy = state / "audit-policy.json"
    policy.write_text(
        json.dumps(
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "omitStages": ["RequestReceived"],
                "rules": [
                    {"level": "Metadata", "verbs": ["create", "update", "patch", "delete"]},
                    {"level": "None"},
                ],
            }
        )
    )
    return policy


def _start_controllers(state: Path, bins: dict[str, Path], ports: dict[str, int], kubeconfig: Path) -> None:
    p = state / "pki"
    common = [
        f"--kubeconfig={kubeconfig}", "--bind-address=127.0.0.1", "--leader-elect=false",
        "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
    ]  # fmt: skip
    processes.start(
        "kube-controller-manager",
        [
            str(bins["kube-controller-manager"]), *common, f"--secure-port={ports['kcm']}",
            f"--root-ca-file={p / 'ca.crt'}", f"--service-account-private-key-file={p / 'sa.key'}",
            "--use-service-account-credentials=false", "--controllers=*",
        ],
        state,
    )  # fmt: skip
    processes.start(
        "kube-scheduler",
        [str(bins["kube-scheduler"]), *common, f"--secure-port={ports['scheduler']}"],
        state,
    )
    for name, port in (("kube-controller-manager", ports["kcm"]), ("kube-scheduler", ports["scheduler"])):
        processes.wait_until(
            lambda port=port: _get(f"https://127.0.0.1:{port}/healthz") == "ok", 60, f"{name}"
        )


S3_PORTS = ("s3", "s3_grpc", "master", "master_grpc", "filer", "filer_grpc", "volume", "volume_grpc")


def _start_s3(state: Path, ports: dict[str, int]) -> dict[str, str]:
    secret = secrets.token_hex(16)
    # With credentials in its environment SeaweedFS enforces them (a wrong secret is rejected).
    start_s3(state, ports, {"AWS_ACCESS_KEY_ID": S3_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": secret})
    env = _write_s3_env(state, f"http://127.0.0.1:{ports['s3']}", secret)
    processes.wait_until(lambda: _s3_answers(env), 90, "SeaweedFS S3 to accept signed requests")
    return env


def start_s3(
    state: Path,
    ports: Mapping[str, int],
    env: Mapping[str, str] | None = None,
    *,
    name: str = "s3",
    extra: tuple[str, ...] = (),
) -> None:
    """SeaweedFS (`weed mini`) on the S3_PORTS in `ports`, its data and log under `state`; `extra` are
    further flags (e.g. `-s3.config=identities.json` for several users with per-bucket actions)."""
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    (state / name).mkdir(parents=True, exist_ok=True)
    processes.start(
        name,
        [
            weed, "mini", f"-dir={state / name}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3_grpc']}",
            f"-master.port={ports['master']}", f"-master.port.grpc={ports['master_grpc']}",
            f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer_grpc']}",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume_grpc']}",
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", *extra,
        ],
        state,
        env=env,
    )  # fmt: skip


def s3_client(env: Mapping[str, str], secret: str | None = None):
    """A boto3 S3 client for the local server described by an s3.env mapping."""
    import boto3  # the test environment has it; the control plane itself does not need it

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    )


def _s3_answers(env: dict[str, str]) -> bool:
    s3_client(env).list_buckets()
    return True


def start_nodeagent(state: Path, kubeconfig: Path) -> None:
    processes.start(
        "nodeagent",
        [
            sys.executable,
            "-m",
            "tests.cluster.nodeagent",
            "--kubeconfig",
            str(kubeconfig),
            "--state",
            str(state),
        ],
        state,
        env={"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"},
    )


def wait_nodes_ready(kubeconfig: Path, timeout: float = 90) -> None:
    from tests.cluster.nodeagent import all_nodes_schedulable

    processes.wait_until(
        lambda: all_nodes_schedulable(kubeconfig), timeout, "simulated nodes Ready and untainted"
    )


def healthy(state: Path = STATE_DIR) -> bool:
    info = state / "state.json"
    if not info.exists():
        return False
    pids = processes.recorded(state)
    if not set(STOP_ORDER) <= set(pids) or not all(processes.alive(pids[name]) for name in STOP_ORDER):
        return False
    server = json.loads(info.read_text())["server"]
    try:
        return _get(f"{server}/readyz", _tls_context(state, client_cert=True)) == "ok"
    except OSError:
        return False


def up(state: Path = STATE_DIR) -> ClusterInfo:
    if healthy(state):
        return ClusterInfo(state, state / "kubeconfig", read_s3_env(state))
    down(state)
    started = time.monotonic()
    bins = build.ensure_binaries()
    state.mkdir(parents=True, exist_ok=True)
    pki.generate(state / "pki")
    names = ("etcd", "etcd_peer", "etcd_metrics", "apiserver", "kcm", "scheduler", *S3_PORTS)
    ports = {name: processes.free_port() for name in names}
    try:
        _start_etcd(state, bins["etcd"], ports)
        server = _start_apiserver(state, bins["kube-apiserver"], ports)
        kubeconfig = _write_kubeconfig(state, server)
        _start_controllers(state, bins, ports, kubeconfig)
        start_nodeagent(state, kubeconfig)
        s3_env = _start_s3(state, ports)
        wait_nodes_ready(kubeconfig)
    except BaseException:
        print(f"cluster: start failed; logs are in {state / 'logs'}", file=sys.stderr)
        _stop_all(state)
        raise
    (state / "state.json").write_text(json.dumps({"server": server, "ports": ports}, indent=2))
    print(
        f"cluster: ready in {time.monotonic() - started:.1f}s; KUBECONFIG={kubeconfig}; S3 env in {state / 's3.env'}"
    )
    return ClusterInfo(state, kubeconfig, s3_env)


def _stop_all(state: Path) -> None:
    if (state / "realnode").exists():  # a real kubelet's containers and mounts go first (realkubelet.py)
        from tests.cluster import realkubelet

        realkubelet.down(state)
    # Whatever was started on top of the cluster (the demo's operator) goes first.
    extra = [name for name in processes.recorded(state) if name not in STOP_ORDER]
    for name in [*extra, *STOP_ORDER]:
        processes.stop(name, state)


def down(state: Path = STATE_DIR) -> None:
    if not state.exists():
        return
    _stop_all(state)
    shutil.rmtree(state, ignore_errors=True)
