"""buildah and podman without a Docker daemon: the project's own containers.conf, commands echoed and timed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.cluster.config import CACHE

IMAGES_CACHE = CACHE / "images"
CONTAINERS_CONF = IMAGES_CACHE / "containers.conf"
# runc, not crun (crun 1.8 fails on this cgroup v1 hybrid layout); cgroupfs, not systemd; ulimits within what
# a process without CAP_SYS_RESOURCE may set (the defaults ask for more and every container start is refused).
CONTAINERS_CONF_TEXT = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
# A TLS-inspecting proxy's CA lives only in the host's bundle: builds see it at the same path, read-only; it is a
# mount, so it never ends up in an image.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
TOOLS = ("buildah", "podman", "mmdebstrap", "runc", "patchelf")
TOOLS_HINT = (
    "apt-get install buildah podman mmdebstrap runc patchelf (Debian packages; no Docker daemon needed)"
)


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def env() -> dict[str, str]:
    IMAGES_CACHE.mkdir(parents=True, exist_ok=True)
    if not CONTAINERS_CONF.exists() or CONTAINERS_CONF.read_text() != CONTAINERS_CONF_TEXT:
        CONTAINERS_CONF.write_text(CONTAINERS_CONF_TEXT)
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def build_mounts() -> list[str]:
    """-v options of every build: the host CA bundle, read-only. (No pip cache mount: the Dockerfiles remove
    /root/.cache/pip in their RUN steps, which a mount point refuses.)"""
    if HOST_CA_BUNDLE.is_file():
        return ["-v", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    return []


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+ " + " ".join(command), flush=True)
    return subprocess.run(command, env=env(), check=True, **kwargs)


def timed(command: list[str]) -> float:
    started = time.monotonic()
    run(command)
    return time.monotonic() - started


def inspect(image: str) -> dict | None:
    out = subprocess.run(["podman", "image", "inspect", image], env=env(), capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout)[0]


def label(image: str, name: str) -> str | None:
    found = inspect(image)
    return ((found or {}).get("Labels") or {}).get(name) if found else None


def size_mb(image: str) -> int:
    found = inspect(image)
    return round(found["Size"] / 1e6) if found else 0


def exists(image: str) -> bool:
    return inspect(image) is not None
