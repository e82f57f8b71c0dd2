"""Shared pieces of the benchmarks: records, the private bench cluster, the peer venv, machine facts.

Every benchmark runs against its OWN local cluster (`DSO_CLUSTER_DIR`, default /tmp/dso-bench-cluster),
never the shared `.cluster/` other engineers' tests use; the runner starts it and tears it down.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
PEER_VENV = BENCH / ".venv-peer"
PEER_REQUIREMENTS = BENCH / "requirements-peer.txt"
DEFAULT_CLUSTER_DIR = Path("/tmp/dso-bench-cluster")
DEFAULT_WORK_DIR = Path("/tmp/dso-bench-work")
SHARED_CLUSTER_DIR = REPO / ".cluster"
CRD = REPO / "manifests" / "crd" / "training.deepspeech.dev_deepspeechtrainings.yaml"
GROUP, VERSION, PLURAL, KIND = (
    "training.deepspeech.dev",
    "v1alpha1",
    "deepspeechtrainings",
    "DeepSpeechTraining",
)
BENCH_USER_AGENT = "dso-bench/1"


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------- records


@dataclasses.dataclass
class Record:
    """One figure. `ratio` is always "how many times better than the peer": peer time / our time for
    durations and latencies, our rate / peer rate for throughputs (so > 1 means better than the peer)."""

    name: str
    value: float
    unit: str
    peer: str | None = None
    peer_value: float | None = None
    ratio: float | None = None
    target: str | None = None
    met: bool | None = None
    date: str = dataclasses.field(default_factory=now_iso)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("details")
        return out

    def line(self) -> str:
        def fmt(x: float | None) -> str:
            return "-" if x is None else (f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}")

        peer = f"{self.peer}={fmt(self.peer_value)} {self.unit}" if self.peer else "peer: none"
        ratio = f"ratio {self.ratio:.2f}x" if self.ratio is not None else "ratio -"
        verdict = {True: "MET", False: "NOT MET", None: "(info)"}[self.met]
        return (
            f"  {self.name:<42} {fmt(self.value):>8} {self.unit:<7} | {peer:<34} | {ratio:<12} | "
            f"target {self.target or '-'}: {verdict}"
        )


def ratio_time(ours: float, peer: float | None) -> float | None:
    """Durations: peer / ours (2.0 = we take half the peer's time)."""
    if peer is None or ours <= 0:
        return None
    return round(peer / ours, 3)


def ratio_rate(ours: float, peer: float | None) -> float | None:
    if peer is None or not peer:
        return None
    return round(ours / peer, 3)


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100)."""
    data = sorted(values)
    if not data:
        return float("nan")
    k = (len(data) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# --------------------------------------------------------------------------------------------- processes


def run(cmd: Sequence[str | Path], env: Mapping[str, str] | None = None, **kwargs: Any) -> str:
    """Run a command, return stdout; raise with its stderr on failure."""
    proc = subprocess.run(
        [str(c) for c in cmd], env=dict(env) if env else None, capture_output=True, text=True, **kwargs
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc.stdout


def timed(cmd: Sequence[str | Path], env: Mapping[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    out = run(cmd, env)
    return time.perf_counter() - started, out


def timed_cpu(cmd: Sequence[str | Path], env: Mapping[str, str] | None = None) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system of the command and its children) and stdout. On a
    loaded machine CPU per run is steadier than wall time: it tells which client costs the cores more."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, out = timed(cmd, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, out


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM (KiB) of a process."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


# --------------------------------------------------------------------------------------------- peer venv


def ensure_peer_venv() -> Path:
    """bench/.venv-peer with awscli and py-spy at the pinned versions; rebuilt when the pins change."""
    digest = hashlib.sha256(PEER_REQUIREMENTS.read_bytes()).hexdigest()
    stamp = PEER_VENV / ".installed"
    if stamp.exists() and stamp.read_text() == digest:
        return PEER_VENV / "bin"
    log(f"creating {PEER_VENV.relative_to(REPO)} from {PEER_REQUIREMENTS.relative_to(REPO)}")
    base = os.environ.get("BENCH_BASE_PYTHON") or _base_python()
    run([base, "-m", "venv", "--clear", PEER_VENV])
    run(
        [
            PEER_VENV / "bin" / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            PEER_REQUIREMENTS,
        ]
    )
    stamp.write_text(digest)
    return PEER_VENV / "bin"


def _base_python() -> str:
    """The interpreter the project's .venv was made from (so the peer runs on the same Python)."""
    cfg = REPO / ".venv" / "pyvenv.cfg"
    if cfg.exists():
        for line in cfg.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "executable":
                return value.strip()
    return getattr(sys, "_base_executable", sys.executable)


# --------------------------------------------------------------------------------------------- cluster


class BenchCluster:
    """The benchmark's private control plane + S3 (tests.cluster with DSO_CLUSTER_DIR)."""

    def __init__(self, state: Path) -> None:
        if state.resolve() == SHARED_CLUSTER_DIR.resolve():
            raise SystemExit("refusing to benchmark on the shared .cluster/: set DSO_CLUSTER_DIR elsewhere")
        self.state = state
        self.env = {**os.environ, "DSO_CLUSTER_DIR": str(state), "PYTHONPATH": str(REPO)}

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.state / "logs" / "audit.log"

    def up(self) -> None:
        started = time.monotonic()
        run([sys.executable, "-m", "tests.cluster", "up"], self.env, cwd=REPO)
        log(f"bench cluster ready in {time.monotonic() - started:.1f}s at {self.state}")
        run([*self.kubectl_cmd(), "apply", "--server-side", "--force-conflicts", "-f", CRD])
        for attempt in range(20):  # `wait` errors out while the CRD has no conditions yet
            try:
                self.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{PLURAL}.{GROUP}")
                break
            except RuntimeError:
                if attempt == 19:
                    raise
                time.sleep(0.5)

    def down(self) -> None:
        run([sys.executable, "-m", "tests.cluster", "down"], self.env, cwd=REPO)
        log(f"bench cluster at {self.state} stopped and removed")

    def s3_env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in (self.state / "s3.env").read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                out[key.strip().removeprefix("export ").strip()] = value.strip().strip('"')
        return out

    def kubectl_cmd(self) -> list[str]:
        return [str(REPO / ".venv" / "bin" / "kubectl"), f"--kubeconfig={self.kubeconfig}"]

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return run([*self.kubectl_cmd(), *args], input=input)

    def api_client(self) -> Any:
        from kubernetes import config

        client = config.new_client_from_config(str(self.kubeconfig))
        client.user_agent = BENCH_USER_AGENT
        client.configuration.connection_pool_maxsize = 32
        return client

    def metrics(self) -> str:
        """The apiserver's /metrics text."""
        api = self.api_client()
        resp = api.call_api("/metrics", "GET", _preload_content=False, auth_settings=["BearerToken"])
        raw = resp[0] if isinstance(resp, tuple) else resp
        return raw.data.decode()

    def server_version(self) -> str:
        try:
            return json.loads(self.kubectl("version", "-o", "json"))["serverVersion"]["gitVersion"]
        except Exception:
            return "unknown"


def request_totals(metrics_text: str) -> dict[tuple[str, str], float]:
    """apiserver_request_total summed by (verb, resource)."""
    totals: dict[tuple[str, str], float] = {}
    for line in metrics_text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, _, value = line.rpartition("} ")
        labels = dict(
            part.split("=", 1)
            for part in labels_text[len("apiserver_request_total{") :].split(",")
            if "=" in part
        )
        key = (labels.get("verb", "").strip('"'), labels.get("resource", "").strip('"'))
        totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def audit_events(path: Path, offset: int = 0) -> Iterator[dict[str, Any]]:
    """Audit events written after byte `offset` (ResponseComplete stage only)."""
    with path.open("rb") as fh:
        fh.seek(offset)
        for raw in fh:
            try:
                event = json.loads(raw)
            except ValueError:
                continue  # a line being written right now
            if event.get("stage") == "ResponseComplete":
                yield event


def audit_time(event: Mapping[str, Any], key: str = "requestReceivedTimestamp") -> float:
    stamp = event[key]
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC).timestamp()


def is_operator_write(event: Mapping[str, Any], namespace: str) -> bool:
    """Writes the operator made in `namespace`: kopf's own client, or the kubernetes client (the node
    agent shares that client's user agent but only ever writes pods, which the operator never does)."""
    ref = event.get("objectRef") or {}
    if ref.get("namespace") != namespace:
        return False
    agent = event.get("userAgent", "")
    if agent.startswith("kopf/"):
        return True
    return agent.startswith("OpenAPI-Generator/") and ref.get("resource") != "pods"


# --------------------------------------------------------------------------------------------- machine


def machine_info(cluster: BenchCluster | None) -> dict[str, Any]:
    from importlib import metadata

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "absent"

    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    peer_versions = {}
    aws = PEER_VENV / "bin" / "aws"
    if aws.exists():
        try:
            peer_versions["aws-cli"] = run([aws, "--version"]).strip()
        except RuntimeError:
            peer_versions["aws-cli"] = "unknown"
    weed = REPO / ".venv" / "bin" / "weed"
    try:
        weed_version = run([weed, "version"]).strip().splitlines()[0]
    except (RuntimeError, OSError, IndexError):
        weed_version = "unknown"
    return {
        "date": now_iso(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kubernetes": cluster.server_version() if cluster else "not started",
        "seaweedfs": weed_version,
        "packages": {
            d: version(d)
            for d in ("kopf", "kubernetes", "boto3", "botocore", "s3transfer", "urllib3", "aiohttp")
        },
        "peer": peer_versions,
    }


def write_results(records: list[Record], machine: dict[str, Any], notes: list[str]) -> Path:
    """latest.json (merged by name with earlier runs' records) and a dated copy with machine facts."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    latest_path = RESULTS / "latest.json"
    merged: dict[str, dict[str, Any]] = {}
    if latest_path.exists():
        try:
            merged = {r["name"]: r for r in json.loads(latest_path.read_text())}
        except (ValueError, KeyError, TypeError):
            merged = {}
    for r in records:
        merged[r.name] = r.public()
    latest_path.write_text(json.dumps(list(merged.values()), indent=2) + "\n")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    dated = RESULTS / f"{stamp}.json"
    dated.write_text(
        json.dumps(
            {
                "machine": machine,
                "notes": notes,
                "records": [{**r.public(), "details": r.details} for r in records],
            },
            indent=2,
        )
        + "\n"
    )
    return dated
