"""Simulated kubelets: registers GPU and CPU nodes, keeps them Ready with Lease heartbeats, and moves the
pods bound to them through their phases like a kubelet would report them (no container ever runs).

Pod behaviour is chosen by annotations (config.SIM_*) on the pod, falling back to its namespace:
- default: Running, then Succeeded with exit code 0 after `run-seconds` (1 s);
- `hold: "true"`: stays Running until the pod gets an `exit-code` annotation;
- `exit-code: "<n>"`: containers terminate with n (phase Failed unless n == 0), with optional
  `reason` (e.g. OOMKilled) and `termination-message`;
- graceful deletion (e.g. an eviction through the Eviction API, which adds DisruptionTarget): containers
  terminate with 143, phase Failed, then the pod object is removed, as a kubelet confirms deletion.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.cluster import kubeletlogs, podspec
from tests.cluster.config import (
    CPU_NODES,
    GPU_NODES,
    GPU_PRODUCT,
    GPU_TAINT,
    GPUS_PER_NODE,
    PROCESS_NODES,
    PROCESS_TAINT,
    REPO,
    RUNTIME_LABEL,
    SIM_EXIT_CODE,
    SIM_HOLD,
    SIM_IMAGE_ENV,
    SIM_MESSAGE,
    SIM_REASON,
    SIM_RUN_SECONDS,
    SIM_RUNTIME,
    STATE_DIR,
    image_env,
)
from tests.cluster.processes import free_port
from tests.cluster.procrunner import ProcessPod

log = logging.getLogger("nodeagent")
HEARTBEAT_SECONDS = 10
LEASE_SECONDS = 40
KUBELET_VERSION = "v1.36.3"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def node_manifest(name: str, gpus: int, runs_processes: bool = False) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    labels["sim.deepspeech.dev/node"] = "true"
    spec: dict[str, Any] = {"taints": []}
    if gpus:
        labels |= {"nvidia.com/gpu.product": GPU_PRODUCT, "nvidia.com/gpu.count": str(gpus)}
        spec["taints"].append(GPU_TAINT)
    if runs_processes:
        labels[RUNTIME_LABEL] = "process"
        spec["taints"].append(PROCESS_TAINT)
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": spec}


def node_status(gpus: int, kubelet_port: int = 0) -> dict[str, Any]:
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "500Gi"}
    if gpus:
        resources["nvidia.com/gpu"] = str(gpus)
    stamp = now()

    def condition(kind: str, status: str, reason: str) -> dict[str, str]:
        return {"type": kind, "status": status, "reason": reason, "message": reason}

    conditions = [
        condition("Ready", "True", "KubeletReady"),
        condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        condition("PIDPressure", "False", "KubeletHasSufficientPID"),
    ]
    for c in conditions:
        c |= {"lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
    return {
        "capacity": resources,
        "allocatable": resources,
        "conditions": conditions,
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {
            "kubeletVersion": KUBELET_VERSION,
            "containerRuntimeVersion": "sim://1.0",
            "architecture": "amd64",
            "operatingSystem": "linux",
            "osImage": "simulated",
            "kernelVersion": "",
            "kubeProxyVersion": "",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    }


def all_nodes_schedulable(kubeconfig: Path) -> bool:
    api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
    wanted = set(GPU_NODES) | set(CPU_NODES)
    ready = set()
    for node in api.list_node().items:
        conditions = {c.type: c.status for c in node.status.conditions or []}
        not_ready_taint = any(t.key.startswith("node.kubernetes.io/") for t in node.spec.taints or [])
        if conditions.get("Ready") == "True" and not not_ready_taint:
            ready.add(node.metadata.name)
    return wanted <= ready


def _annotation(pod: Any, namespace_annotations: dict[str, str], key: str) -> str | None:
    return (pod.metadata.annotations or {}).get(key) or namespace_annotations.get(key)


def terminated_state(container: str, image: str, exit_code: int, reason: str, message: str) -> dict[str, Any]:
    stamp = now()
    return {
        "name": container,
        "image": image,
        "imageID": f"sim://{image}",
        "containerID": f"sim://{container}",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {
            "terminated": {
                "exitCode": exit_code,
                "reason": reason,
                "message": message,
                "startedAt": stamp,
                "finishedAt": stamp,
            }
        },
    }


class Agent:
    def __init__(self, api_client: client.ApiClient, nodes: dict[str, int], state: Path = STATE_DIR) -> None:
        self.core = client.CoreV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self.api_client = api_client
        self.nodes = nodes
        self.state = state
        self.lock = threading.Lock()
        self.timers: dict[str, threading.Timer] = {}
        self.process_pods: dict[str, ProcessPod] = {}
        self.stopping = threading.Event()
        self.kubelet_port = 0

    # --- nodes -----------------------------------------------------------------------------------
    def register_nodes(self) -> None:
        for name, gpus in self.nodes.items():
            try:
                self.core.create_node(node_manifest(name, gpus, runs_processes=name in PROCESS_NODES))
            except ApiException as exc:
                if exc.status != 409:
                    raise
            self.core.patch_node_status(name, {"status": node_status(gpus, self.kubelet_port)})

    def heartbeat_forever(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat()
            except Exception:
                log.exception("heartbeat failed")

    def heartbeat(self) -> None:
        for name, gpus in self.nodes.items():
            self._renew_lease(name)
            self.core.patch_node_status(name, {"status": node_status(gpus, self.kubelet_port)})

    def _renew_lease(self, name: str) -> None:
        body = {
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now_micro()},
        }
        try:
            self.coordination.patch_namespaced_lease(name, "kube-node-lease", body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.coordination.create_namespaced_lease("kube-node-lease", body)

    # --- pods ------------------------------------------------------------------------------------
    def watch_pods_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                # A watch without resourceVersion first replays every existing pod as ADDED, so pods
                # bound while the agent was down are picked up too.
                for event in watch.Watch().stream(self.core.list_pod_for_all_namespaces, timeout_seconds=300):
                    pod = event["object"]
                    if pod.spec.node_name in self.nodes and event["type"] != "DELETED":
                        self.reconcile_pod(pod)
            except Exception:
                if not self.stopping.is_set():
                    log.exception("pod watch failed; restarting it")

    def reconcile_pod(self, pod: Any) -> None:
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        with self.lock:
            try:
                self._reconcile(pod, key)
            except ApiException as exc:
                if exc.status not in (404, 409):
                    log.warning("pod %s: %s %s", key, exc.status, exc.reason)

    def _reconcile(self, pod: Any, key: str) -> None:
        phase = pod.status.phase
        ns_annotations = self._namespace_annotations(pod.metadata.namespace)
        if pod.spec.node_name in PROCESS_NODES or ns_annotations.get(SIM_RUNTIME) == "process":
            self._reconcile_process_pod(pod)
            return
        if pod.metadata.deletion_timestamp is not None:
            if phase not in ("Succeeded", "Failed"):
                self._terminate(pod, 143, "Error", "")
            self.core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
            self._cancel_timer(key)
            return
        if phase in ("Succeeded", "Failed"):
            self._cancel_timer(key)
            return
        if phase == "Pending":
            self._start(pod)
        exit_code = _annotation(pod, ns_annotations, SIM_EXIT_CODE)
        if exit_code is not None:
            reason = _annotation(pod, ns_annotations, SIM_REASON) or (
                "Completed" if exit_code == "0" else "Error"
            )
            message = _annotation(pod, ns_annotations, SIM_MESSAGE) or ""
            self._terminate(pod, int(exit_code), reason, message)
            self._cancel_timer(key)
        elif _annotation(pod, ns_annotations, SIM_HOLD) != "true" and key not in self.timers:
            seconds = float(_annotation(pod, ns_annotations, SIM_RUN_SECONDS) or 1)
            timer = threading.Timer(
                seconds, self._finish_after_run, args=(pod.metadata.namespace, pod.metadata.name)
            )
            timer.daemon = True
            self.timers[key] = timer
            timer.start()

    def _finish_after_run(self, namespace: str, name: str) -> None:
        with self.lock:
            self.timers.pop(f"{namespace}/{name}", None)
            try:
                pod = self.core.read_namespaced_pod(name, namespace)
                ns_annotations = self._namespace_annotations(namespace)
                still_running = pod.status.phase == "Running" and pod.metadata.deletion_timestamp is None
                if still_running and _annotation(pod, ns_annotations, SIM_HOLD) != "true":
                    self._terminate(pod, 0, "Completed", _annotation(pod, ns_annotations, SIM_MESSAGE) or "")
            except ApiException as exc:
                if exc.status != 404:
                    log.warning("pod %s/%s: %s", namespace, name, exc.reason)

    def _cancel_timer(self, key: str) -> None:
        timer = self.timers.pop(key, None)
        if timer:
            timer.cancel()

    def _namespace_annotations(self, namespace: str) -> dict[str, str]:
        return self.core.read_namespace(namespace).metadata.annotations or {}

    def _start(self, pod: Any) -> None:
        stamp = now()
        statuses = [
            {
                "name": c.name,
                "image": c.image,
                "imageID": f"sim://{c.image}",
                "containerID": f"sim://{c.name}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": stamp}},
            }
            for c in pod.spec.containers
        ]
        init_statuses = [
            terminated_state(c.name, c.image, 0, "Completed", "") for c in pod.spec.init_containers or []
        ]
        conditions = [
            {"type": kind, "status": "True", "lastTransitionTime": stamp}
            for kind in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
        ]
        status = {
            "phase": "Running",
            "startTime": stamp,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "10.244.0.10",
            "podIPs": [{"ip": "10.244.0.10"}],
            "conditions": conditions,
            "containerStatuses": statuses,
            "initContainerStatuses": init_statuses,
        }
        pod.status.phase = "Running"
        self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, {"status": status})

    def _terminate(self, pod: Any, exit_code: int, reason: str, message: str) -> None:
        stamp = now()
        statuses = [
            terminated_state(c.name, c.image, exit_code, reason, message) for c in pod.spec.containers
        ]
        status = {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "conditions": [
                {"type": kind, "status": "False", "reason": "PodCompleted", "lastTransitionTime": stamp}
                for kind in ("ContainersReady", "Ready")
            ],
            "containerStatuses": statuses,
        }
        self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, {"status": status})

    # --- pods that really run ---------------------------------------------------------------------
    def is_running(self, namespace: str, name: str) -> bool:
        return any(
            p.pod["metadata"]["namespace"] == namespace
            and p.pod["metadata"]["name"] == name
            and any(proc.poll() is None for proc in p.processes.values())
            for p in list(self.process_pods.values())
        )

    def _reconcile_process_pod(self, pod: Any) -> None:
        uid = pod.metadata.uid
        running = self.process_pods.get(uid)
        if pod.metadata.deletion_timestamp is not None:
            grace = pod.metadata.deletion_grace_period_seconds or 0
            threading.Thread(target=self._stop_process_pod, args=(pod, running, grace), daemon=True).start()
            return
        if running is None and pod.status.phase == "Pending":
            raw = self.api_client.sanitize_for_serialization(pod)
            runner = ProcessPod(
                pod=raw,
                root=self.state / "pods" / f"{pod.metadata.namespace}_{pod.metadata.name}_{uid}",
                env_for=lambda container, raw=raw: self._container_env(raw, container),
                files_for=lambda volume, raw=raw: self._volume_files(raw, volume),
                report=lambda kind, payload, pod=pod: self._report(pod, kind, payload),
                now=now,
                image_paths=(REPO,),
            )
            self.process_pods[uid] = runner
            threading.Thread(target=runner.run, name=f"pod-{pod.metadata.name}", daemon=True).start()

    def _stop_process_pod(self, pod: Any, runner: ProcessPod | None, grace: float) -> None:
        if runner is not None:
            runner.stop(grace)
        try:
            self.core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("pod %s/%s: %s", pod.metadata.namespace, pod.metadata.name, exc.reason)
        self.process_pods.pop(pod.metadata.uid, None)

    def _container_env(self, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
        api = urlparse(self.api_client.configuration.host)
        annotations = self._namespace_annotations(pod["metadata"]["namespace"])
        knobs = {
            k.removeprefix(SIM_IMAGE_ENV): v for k, v in annotations.items() if k.startswith(SIM_IMAGE_ENV)
        }
        base = (
            image_env(container.get("image", ""))
            | knobs
            | {
                "HOSTNAME": pod["metadata"]["name"],
                "KUBERNETES_SERVICE_HOST": api.hostname or "127.0.0.1",
                "KUBERNETES_SERVICE_PORT": str(api.port or 443),
            }
        )
        return podspec.container_env(pod, container, self._secret, self._config_map, base)

    def _volume_files(self, pod: dict[str, Any], volume: dict[str, Any]) -> list[podspec.FileContent] | None:
        def token(audience: str, seconds: int) -> str:
            body = {
                "spec": {
                    "audiences": [audience] if audience else None,
                    "expirationSeconds": seconds,
                    "boundObjectRef": {
                        "kind": "Pod",
                        "apiVersion": "v1",
                        "name": pod["metadata"]["name"],
                        "uid": pod["metadata"]["uid"],
                    },
                }
            }
            account = pod["spec"].get("serviceAccountName") or "default"
            return self.core.create_namespaced_service_account_token(
                account, pod["metadata"]["namespace"], body
            ).status.token

        return podspec.volume_files(pod, volume, self._secret, self._config_map, token)

    def _secret(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            return podspec.decode_secret(self.core.read_namespaced_secret(name, namespace).data or {})
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            return self.core.read_namespaced_config_map(name, namespace).data or {}
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _report(self, pod: Any, kind: str, payload: Any) -> None:
        name, namespace = pod.metadata.name, pod.metadata.namespace
        stamp = now()
        if kind == "running":
            status = {
                "phase": "Running",
                "startTime": stamp,
                "hostIP": "127.0.0.1",
                "podIP": "127.0.0.1",
                "conditions": [
                    {"type": t, "status": "True", "lastTransitionTime": stamp}
                    for t in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
                ],
                "containerStatuses": [
                    {
                        "name": payload["name"],
                        "image": next(c.image for c in pod.spec.containers if c.name == payload["name"]),
                        "imageID": "process://",
                        "containerID": f"process://{pod.metadata.uid}/{payload['name']}",
                        "ready": True,
                        "started": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": payload["startedAt"]}},
                    }
                ],
            }
        elif kind == "terminated":
            results = payload["init"] + payload["main"]
            statuses = [
                terminated_state(r.name, r.image, r.exit_code, r.reason, r.message)
                | {"containerID": f"process://{pod.metadata.uid}/{r.name}"}
                for r in results
            ]
            for status_entry, result in zip(statuses, results, strict=True):
                status_entry["state"]["terminated"] |= {
                    "startedAt": result.started_at,
                    "finishedAt": result.finished_at,
                }
            failed = any(r.exit_code != 0 for r in results) or not payload["main"]
            status = {
                "phase": "Failed" if failed else "Succeeded",
                "conditions": [
                    {"type": t, "status": "False", "reason": "PodCompleted", "lastTransitionTime": stamp}
                    for t in ("ContainersReady", "Ready")
                ],
                ("initContainerStatuses" if payload["init"] else "containerStatuses"): statuses,
            }
        else:  # failed-to-start: the pod stays Pending with a waiting reason, like a kubelet reports it
            status = {
                "containerStatuses": [
                    {
                        "name": c.name,
                        "image": c.image,
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": payload.reason, "message": str(payload)}},
                    }
                    for c in pod.spec.containers
                ]
            }
        try:
            self.core.patch_namespaced_pod_status(name, namespace, {"status": status})
        except ApiException as exc:
            log.warning("pod %s/%s: status %s: %s", namespace, name, kind, exc.reason)


def default_nodes() -> dict[str, int]:
    return {**{n: GPUS_PER_NODE for n in (*GPU_NODES, *PROCESS_NODES)}, **{n: 0 for n in CPU_NODES}}


def run(kubeconfig: Path, nodes: dict[str, int], state: Path) -> None:
    agent = Agent(config.new_client_from_config(str(kubeconfig)), nodes, state)
    pki = state / "pki"
    if (pki / "kubelet.crt").exists():
        agent.kubelet_port = free_port()
        kubeletlogs.serve(
            state / "pods", agent.kubelet_port, pki / "kubelet.crt", pki / "kubelet.key", agent.is_running
        )
    agent.register_nodes()
    agent.heartbeat()
    threading.Thread(target=agent.heartbeat_forever, name="heartbeat", daemon=True).start()
    log.info("nodes registered: %s", ", ".join(nodes))
    agent.watch_pods_forever()


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument(
        "--state", type=Path, default=STATE_DIR, help="where pods that run keep volumes and logs"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if shutil.which("unshare") is None:
        parser.error("unshare (util-linux) is needed to run pods as processes")
    run(args.kubeconfig, default_nodes(), args.state)


if __name__ == "__main__":
    main()
