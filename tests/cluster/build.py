"""Builds the control-plane binaries from Go modules, once per machine, into a cache outside the repo.

The wrapper modules in go/ pin k8s.io/kubernetes (with one replace per staging module, generated from
k/k's own go.mod) and go.etcd.io/etcd/server/v3; only their go.mod/go.sum are committed. go/health is a
small program of ours around sigs.k8s.io/cli-utils kstatus and gopher-lua (Flux's and Argo CD's health
libraries), built the same way.

A real `kubelet` (for tests/cluster/realkubelet.py) is an optional build, never part of ensure_binaries():
go/kubelet is go/kube's go.mod with kubelet as its one tool, tidied (kubelet needs two modules the control
plane does not), so it pins the same k8s.io/kubernetes and shares the Go module and build caches.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import os
import subprocess
from pathlib import Path

from tests.cluster.config import CACHE, ETCD_VERSION, GO_MODULES, K8S_VERSION

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def go_version() -> str:
    return subprocess.run(
        ["go", "env", "GOVERSION"], check=True, capture_output=True, text=True
    ).stdout.strip()


def kube_bin_dir() -> Path:
    # The Go version is part of the key: a new toolchain means a rebuild, never a stale mix.
    return CACHE / "k8s" / f"{K8S_VERSION}-{go_version()}"


def etcd_binary() -> Path:
    return CACHE / "etcd" / f"{ETCD_VERSION}-{go_version()}" / "etcd"


def _version_ldflags() -> str:
    major, minor = K8S_VERSION.lstrip("v").split(".")[:2]
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    pkg = "k8s.io/component-base/version"
    return " ".join(
        [
            "-s -w",
            f"-X {pkg}.gitVersion={K8S_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate={stamp}",
        ]
    )


def _go_build(module_dir: Path, out: Path, packages: list[str], ldflags: str, what: str) -> None:
    env = {**os.environ, "CGO_ENABLED": "0"}
    cmd = [
        "go",
        "build",
        "-trimpath",
        "-pgo=off",
        "-tags=selinux,notest",
        f"-ldflags={ldflags}",
        "-o",
        str(out),
    ]
    print(f"cluster: building {what} (cold builds take minutes)", flush=True)
    subprocess.run([*cmd, *packages], cwd=module_dir, env=env, check=True)


def ensure_binaries() -> dict[str, Path]:
    """Returns the paths of etcd and the three control-plane binaries, building any that are missing."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest and `make cluster-up` may race on a fresh machine
        kube_dir = kube_bin_dir()
        if not all((kube_dir / name).exists() for name in KUBE_COMMANDS):
            kube_dir.mkdir(parents=True, exist_ok=True)
            packages = [f"k8s.io/kubernetes/cmd/{name}" for name in KUBE_COMMANDS]
            _go_build(
                GO_MODULES / "kube",
                Path(str(kube_dir) + "/"),
                packages,
                _version_ldflags(),
                " ".join(KUBE_COMMANDS),
            )
        etcd = etcd_binary()
        if not etcd.exists():
            etcd.parent.mkdir(parents=True, exist_ok=True)
            _go_build(
                GO_MODULES / "etcd", etcd, ["go.etcd.io/etcd/server/v3"], "-s -w", f"etcd {ETCD_VERSION}"
            )
    return {"etcd": etcd, **{name: kube_dir / name for name in KUBE_COMMANDS}}


HEALTH_MODULE = GO_MODULES / "health"


def health_binary() -> Path:
    """The `health` tool (go/health/main.go: kstatus and Argo CD's Lua health runtime), built on first use.

    Cached by the hash of its sources and the Go version, so an edit or a new toolchain rebuilds it.
    """
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((HEALTH_MODULE / name).read_bytes())
    binary = CACHE / "health" / f"{digest.hexdigest()[:16]}-{go_version()}" / "health"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            binary.parent.mkdir(parents=True, exist_ok=True)
            _go_build(HEALTH_MODULE, binary, ["."], "-s -w", "the kstatus/Argo CD health tool")
    return binary


KUBELET_MODULE = GO_MODULES / "kubelet"


def kubelet_binary() -> Path:
    """Where the optional kubelet build lives (next to the control plane's binaries, same key)."""
    return kube_bin_dir() / "kubelet"


def ensure_kubelet() -> Path:
    """Builds `kubelet` from the same k8s.io/kubernetes version as the control plane, if it is missing."""
    binary = kubelet_binary()
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            binary.parent.mkdir(parents=True, exist_ok=True)
            _go_build(
                KUBELET_MODULE, binary, ["k8s.io/kubernetes/cmd/kubelet"], _version_ldflags(), "kubelet"
            )
    return binary
