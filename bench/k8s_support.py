"""Operator-side helpers: run an operator process, watch Jobs, create CRs, sample RSS."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.common import GROUP, KIND, REPO, VERSION, BenchCluster, proc_status
from tests.cluster.config import SIM_HOLD, SIM_RUN_SECONDS
from tests.cluster.processes import free_port

HOLD = SIM_HOLD
RUN_SECONDS = SIM_RUN_SECONDS


def make_namespace(cluster: BenchCluster, prefix: str, annotations: dict[str, str]) -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    if annotations:
        cluster.kubectl("annotate", "namespace", name, *[f"{k}={v}" for k, v in annotations.items()])
    return name


def delete_namespace(cluster: BenchCluster, name: str) -> None:
    with contextlib.suppress(RuntimeError):
        cluster.kubectl("delete", "namespace", name, "--wait=false")


def training(name: str, namespace: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "data": {"train": ["s3://corpus/cv-en/train.csv"], "dev": ["s3://corpus/cv-en/dev.csv"]},
        "training": {"epochs": 3, "learningRate": 0.0001},
        "output": {"uri": f"s3://models/{name}/"},
        "resources": {"gpus": 1, "cpu": "1", "memory": "1Gi", "sharedMemory": "256Mi"},
        "storage": {"endpoint": "http://127.0.0.1:9000", "secretRef": {"name": "s3-credentials"}},
    }
    spec.update(overrides)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


class OperatorProcess:
    """An operator as a subprocess with its own metrics/liveness ports; `argv` after the interpreter."""

    def __init__(
        self, cluster: BenchCluster, argv: Sequence[str], log_path: Path, liveness_port: int
    ) -> None:
        self.cluster, self.argv, self.log_path, self.liveness_port = (
            cluster,
            list(argv),
            log_path,
            liveness_port,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.wrapper: list[str] = []  # e.g. py-spy record ... -- (then the operator is its child)

    @classmethod
    def deepspeech(cls, cluster: BenchCluster, namespace: str, log_path: Path) -> OperatorProcess:
        live = free_port()
        argv = ["-m", "deepspeech_operator", "--namespaces", namespace]
        argv += ["--metrics-port", str(free_port()), "--liveness-port", str(live)]
        return cls(cluster, argv, log_path, live)

    @classmethod
    def floor(cls, cluster: BenchCluster, namespace: str, log_path: Path) -> OperatorProcess:
        live = free_port()
        script = str(Path(__file__).with_name("floor_operator.py"))
        argv = ["-m", "kopf", "run", script, "--standalone", f"--namespace={namespace}", "--quiet"]
        argv += [f"--liveness=http://127.0.0.1:{live}/healthz"]
        return cls(cluster, argv, log_path, live)

    @property
    def pid(self) -> int:
        """The operator's pid (the wrapper's child when wrapped)."""
        assert self.proc is not None
        if not self.wrapper:
            return self.proc.pid
        for _ in range(50):
            children = _children(self.proc.pid)
            if children:
                return children[0]
            time.sleep(0.1)
        return self.proc.pid

    def start(self, ready_timeout: float = 60) -> None:
        # MALLOC_ARENA_MAX=2 as in Dockerfile.operator, so RSS figures match the image.
        env = {
            "MALLOC_ARENA_MAX": "2",
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "PYTHONPATH": str(REPO),
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*self.wrapper, sys.executable, *self.argv],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        time.sleep(1.0)  # watch streams are opened right after the probe answers
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"operator not ready after {ready_timeout}s; see {self.log_path}")

    def memory(self) -> dict[str, int]:
        return proc_status(self.pid) if self.proc else {}

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None and self.wrapper:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)  # the profiler writes its output once its child ends
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=60)
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            out += [int(x) for x in (task / "children").read_text().split()]
    return out


class JobWatcher:
    """First-seen wall time (time.time()) of every Job in a namespace, from a watch stream."""

    def __init__(self, cluster: BenchCluster, namespace: str) -> None:
        from kubernetes import client

        self.batch = client.BatchV1Api(cluster.api_client())
        self.namespace = namespace
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> JobWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _run(self) -> None:
        from kubernetes import watch

        resource_version = ""
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                kwargs: dict[str, Any] = {"timeout_seconds": 30, "allow_watch_bookmarks": False}
                if resource_version:
                    kwargs["resource_version"] = resource_version
                for event in w.stream(self.batch.list_namespaced_job, self.namespace, **kwargs):
                    now = time.time()
                    obj = event["object"]
                    resource_version = obj.metadata.resource_version or resource_version
                    name = obj.metadata.name
                    with self.cond:
                        if name not in self.seen:
                            self.seen[name] = now
                            self.cond.notify_all()
                    if self._stop.is_set():
                        break
            except Exception:
                resource_version = ""  # 410 Gone or a dropped stream: list again
                time.sleep(0.1)

    def wait_for(self, names: Sequence[str], timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not all(n in self.seen for n in names):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [n for n in names if n not in self.seen]
                    raise TimeoutError(f"jobs not created within {timeout}s: {missing[:5]}")
                self.cond.wait(left)
            return {n: self.seen[n] for n in names}

    def wait_count(self, suffix: str, count: int, timeout: float) -> float:
        """Wall time when `count` Jobs whose name ends with `suffix` had been seen."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                times = sorted(t for n, t in self.seen.items() if n.endswith(suffix))
                if len(times) >= count:
                    return times[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"only {len(times)}/{count} *{suffix} jobs after {timeout}s")
                self.cond.wait(min(left, 1.0))


class RssSampler:
    """Samples VmRSS of a pid every `interval` seconds; `peak_kib` also reads VmHWM at the end."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(self.interval):
            rss = proc_status(self.pid).get("VmRSS")
            if rss:
                self.samples.append((round(time.monotonic() - start, 1), rss))

    def hwm_kib(self) -> int:
        return proc_status(self.pid).get("VmHWM", 0)


@contextlib.contextmanager
def running(op: OperatorProcess) -> Iterator[OperatorProcess]:
    op.start()
    try:
        yield op
    finally:
        op.stop()
