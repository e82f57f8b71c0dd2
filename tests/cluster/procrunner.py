"""Runs a pod's containers as local processes, each in a private mount namespace (`unshare --mount`), with
volumes mounted at the paths the pod spec names, so programs read their files where a real pod would.

What stands in for the image: the host's filesystem with the repository's .venv first on PATH, plus the
image's ENV (config.IMAGE_ENV). Containers run as the agent's user; securityContext is not enforced.
Mount points missing on the host are created as empty directories (or empty files), as a container
runtime would create them inside the image; what is mounted on them is visible to the container only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.cluster.podspec import FileContent, PodSpecError

log = logging.getLogger("procrunner")
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
MAX_TERMINATION_MESSAGE = 4096
FALLBACK_LOG_LINES = 80


@dataclass
class ContainerResult:
    name: str
    image: str
    exit_code: int
    reason: str
    message: str
    started_at: str
    finished_at: str


@dataclass
class ProcessPod:
    """One pod's processes. `report(kind, payload)` receives 'running' and 'terminated' updates."""

    pod: dict[str, Any]
    root: Path
    env_for: Callable[[Mapping[str, Any]], dict[str, str]]
    files_for: Callable[[Mapping[str, Any]], list[FileContent] | None]
    report: Callable[[str, Any], None]
    now: Callable[[], str]
    # Host paths that stand in for the image's files; re-bound at their own path when a volume hides them.
    image_paths: tuple[Path, ...] = ()
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def key(self) -> str:
        return f"{self.pod['metadata']['namespace']}/{self.pod['metadata']['name']}"

    def log_path(self, container: str) -> Path:
        return self.root / "logs" / f"{container}.log"

    # --- set-up ------------------------------------------------------------------------------------
    def prepare_volumes(self) -> dict[str, Path]:
        paths = {}
        for volume in self.pod["spec"].get("volumes") or []:
            target = self.root / "volumes" / volume["name"]
            target.mkdir(parents=True, exist_ok=True)
            for item in self.files_for(volume) or []:
                path = target / item.path
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(item.data)
                path.chmod(item.mode)
            paths[volume["name"]] = target
        return paths

    def sandbox_argv(
        self, container: Mapping[str, Any], volumes: Mapping[str, Path], termination: Path, staging: str
    ) -> list[str]:
        """`unshare --mount` then bind mounts, then exec: the container's command keeps the PID that gets
        signals and whose exit code is reported, and its mounts stay invisible to the host."""
        # A target may hide the sources (an emptyDir on /work hides a pod root under /work): the pod root is
        # first bound at `staging`, which no target covers, and mounted from there.
        termination_target = mount_targets(container)[-1]
        binds = []
        for mount in container.get("volumeMounts") or []:
            source = Path(staging) / "volumes" / mount["name"]
            if mount.get("subPath"):
                source = source / mount["subPath"]
            binds.append((volumes[mount["name"]], source, mount["mountPath"]))
        binds.append((termination, Path(staging) / termination.relative_to(self.root), termination_target))
        steps = [
            f"mkdir -p {shlex.quote(staging)}",
            f"mount --rbind {shlex.quote(str(self.root))} {shlex.quote(staging)}",
        ]
        hidden = [p for p in self.image_paths if any(_covers(t, str(p)) for t in mount_targets(container))]
        for index, path in enumerate(hidden):
            keep = shlex.quote(f"{staging}/.image/{index}")
            steps.append(f"mkdir -p {keep} && mount --rbind {shlex.quote(str(path))} {keep}")
        for host_source, source, target in binds:
            make = "touch" if host_source.is_file() else "mkdir -p"
            parent = shlex.quote(str(Path(target).parent))
            steps.append(
                f"{{ [ -e {shlex.quote(target)} ] || {{ mkdir -p {parent} && {make} {shlex.quote(target)}; }}; }}"
            )
            steps.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}")
        for index, path in enumerate(hidden):
            keep = shlex.quote(f"{staging}/.image/{index}")
            steps.append(
                f"mkdir -p {shlex.quote(str(path))} && mount --rbind {keep} {shlex.quote(str(path))}"
            )
        if container.get("workingDir"):
            steps.append(
                f"mkdir -p {shlex.quote(container['workingDir'])} && cd {shlex.quote(container['workingDir'])}"
            )
        command = list(container.get("command") or []) + list(container.get("args") or [])
        if not command:
            raise PodSpecError(
                "CreateContainerError",
                f"container {container['name']}: no command (images have no entrypoint here)",
            )
        script = " && ".join([*steps, 'exec "$@"'])
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            script,
            "sh",
            *command,
        ]

    # --- life cycle -------------------------------------------------------------------------------
    def run(self) -> None:
        """Init containers one after another, then the main containers together; reports as it goes."""
        try:
            volumes = self.prepare_volumes()
            # Resolved up front, as a kubelet does: a missing Secret keeps the pod from starting at all.
            containers = [*(self.pod["spec"].get("initContainers") or []), *self.pod["spec"]["containers"]]
            envs = {c["name"]: self.env_for(c) for c in containers}
            for container in self.pod["spec"].get("initContainers") or []:
                result = self._run_container(container, volumes, envs[container["name"]], init=True)
                if result.exit_code != 0 or self.stopping.is_set():
                    self.report("terminated", {"init": [result], "main": []})
                    return
            threads, results = [], []
            for container in self.pod["spec"]["containers"]:
                thread = threading.Thread(
                    target=lambda c=container: results.append(
                        self._run_container(c, volumes, envs[c["name"]])
                    )
                )
                thread.start()
                threads.append(thread)
            for thread in threads:
                thread.join()
            self.report("terminated", {"init": [], "main": results})
        except PodSpecError as error:
            self.report("failed-to-start", error)
        except Exception as error:  # the agent must report something, never leave the pod Pending
            log.exception("pod %s failed to run", self.key)
            self.report("failed-to-start", PodSpecError("StartError", str(error)))

    def _run_container(
        self,
        container: Mapping[str, Any],
        volumes: Mapping[str, Path],
        env: dict[str, str],
        init: bool = False,
    ) -> ContainerResult:
        name = container["name"]
        termination = self.root / "termination" / name
        termination.parent.mkdir(parents=True, exist_ok=True)
        termination.write_bytes(b"")
        staging = staging_dir(mount_targets(container), self.pod["metadata"]["uid"])
        argv = self.sandbox_argv(container, volumes, termination, staging)
        self.log_path(name).parent.mkdir(parents=True, exist_ok=True)
        started = self.now()
        with open(self.log_path(name), "ab") as out:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = proc
        if not init:
            self.report("running", {"name": name, "startedAt": started})
        exit_code = proc.wait()
        with contextlib.suppress(OSError):
            os.rmdir(staging)  # the empty mount point left on the host
        if exit_code < 0:  # killed by a signal: report it the way container runtimes do
            exit_code = 128 - exit_code
        message = termination.read_bytes()[:MAX_TERMINATION_MESSAGE].decode(errors="replace")
        if (
            not message
            and exit_code != 0
            and container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            lines = self.log_path(name).read_text(errors="replace").splitlines()[-FALLBACK_LOG_LINES:]
            message = "\n".join(lines)[-2048:]
        reason = "Completed" if exit_code == 0 else "Error"
        return ContainerResult(
            name, container.get("image", ""), exit_code, reason, message, started, self.now()
        )

    def stop(self, grace_seconds: float) -> None:
        """SIGTERM to each container's main process only (as a runtime signals PID 1), then SIGKILL to the
        whole process group after the grace period (as a runtime kills the container's cgroup)."""
        self.stopping.set()
        running = [p for p in self.processes.values() if p.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                proc.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def mount_targets(container: Mapping[str, Any]) -> list[str]:
    """Where the container mounts things; the termination message path last."""
    mounts = [m["mountPath"] for m in container.get("volumeMounts") or []]
    return [*mounts, container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH]


STAGING_CANDIDATES = ("/tmp", "/var/tmp", "/mnt", "/opt", "/srv")


def staging_dir(targets: list[str], uid: str) -> str:
    """A directory outside every mount target, where a container's pod root is bound first."""
    for base in STAGING_CANDIDATES:
        candidate = f"{base}/.dso-pod-{uid}"
        if not any(_covers(t, candidate) for t in targets):
            return candidate
    raise PodSpecError("CreateContainerError", f"mount targets {targets} cover every staging location")


def _covers(target: str, path: str) -> bool:
    """Whether a mount on `target` hides `path`."""
    return target == "/" or path == target or path.startswith(target.rstrip("/") + "/")
