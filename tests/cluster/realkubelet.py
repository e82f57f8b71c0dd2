"""A real kubelet node for the local cluster: containerd (Debian's 1.6, CRI plugin, runc, cgroupfs) and the
`kubelet` built from the control plane's k8s.io/kubernetes version (build.ensure_kubelet), registered as
node REAL_NODE with a client cert from the cluster's CA. Optional: nothing in `cluster up` starts it.

There is no registry to pull from, so the one image it can run is made here: a static Go binary
(go/tinyimage) in an OCI archive imported into containerd's k8s.io namespace; the same image is the
pod sandbox ("pause") image and the test workload (`/hello`). Its name is under the reserved .invalid
domain (RFC 2606), so nothing can ever be pulled for it.

The machine's cgroup v1 hybrid layout and the missing CAP_SYS_RESOURCE shape the settings: cgroupfs
driver, failCgroupV1 false, no QoS cgroups or node-allocatable enforcement, oomScoreAdj 0 for the
kubelet and containerd's restrict_oom_score_adj (a sandbox's -998 would need CAP_SYS_RESOURCE).

`python -m tests.cluster kubelet-up|kubelet-down` starts and stops it on the running cluster; docs/real-kubelet.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import socket
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from tests.cluster import build, pki, processes
from tests.cluster.config import CACHE, GO_MODULES, RUNTIME_LABEL, STATE_DIR

REAL_NODE = "real-kubelet-0"
REAL_TAINT = {"key": RUNTIME_LABEL, "value": "kubelet", "effect": "NoSchedule"}
IMAGE = "dso.invalid/tiny:1"  # sandbox image and workload image at once; see the module docstring
CNI_BRIDGE = "dso-cni0"
POD_SUBNET = "10.244.0.0/24"
GATEWAY = "10.244.0.1"  # the bridge's address on the host: what pods reach host services through
TINY_MODULE = GO_MODULES / "tinyimage"
# Started here, recorded in the cluster's state dir; stopped in this order.
PROCESS_NAMES = ("kubelet", "containerd")


class KubeletExited(BaseException):  # not an Exception, so wait_until does not retry it
    """The kubelet process died while up() waited for its node."""


def node_dir(state: Path = STATE_DIR) -> Path:
    return state / "realnode"


def _socket(state: Path) -> Path:
    return node_dir(state) / "containerd.sock"


def unavailable() -> str | None:
    """Why a real kubelet node cannot start here, or None. Never builds anything."""
    if os.geteuid() != 0:
        return "needs root (containerd, runc, mounts, cgroups)"
    for tool in ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "go"):
        if not shutil.which(tool):
            return f"{tool} not on PATH (apt-get install containerd runc)"
    if not Path("/usr/lib/cni/bridge").exists():
        return "no CNI plugins in /usr/lib/cni (apt-get install containernetworking-plugins)"
    if not build.kubelet_binary().exists():
        return f"no kubelet at {build.kubelet_binary()} (python -m tests.cluster build-kubelet)"
    return None


# ----------------------------------------------------------------------------------------------- image


def tiny_binary() -> Path:
    digest = hashlib.sha256()
    for name in ("go.mod", "main.go"):
        digest.update((TINY_MODULE / name).read_bytes())
    binary = CACHE / "tinyimage" / f"{digest.hexdigest()[:16]}-{build.go_version()}" / "tinyimage"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        build._go_build(TINY_MODULE, binary, ["."], "-s -w", "the tiny image's binary")
    return binary


def _goarch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def oci_archive(binary: Path, ref: str, out: Path) -> Path:
    """An OCI image layout tar (what `ctr images import` reads): one layer with /pause and /hello."""
    data = binary.read_bytes()
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("pause")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("hello")
        link.type, link.linkname, link.mode = tarfile.LNKTYPE, "pause", 0o755
        tar.addfile(link)
    layer = layer_buf.getvalue()

    def blob(content: bytes, media_type: str) -> dict[str, Any]:
        return {
            "mediaType": media_type,
            "digest": f"sha256:{hashlib.sha256(content).hexdigest()}",
            "size": len(content),
        }

    layer_desc = blob(layer, "application/vnd.oci.image.layer.v1.tar")
    config = json.dumps(
        {
            "architecture": _goarch(),
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "Env": ["PATH=/"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
        }
    ).encode()
    config_desc = blob(config, "application/vnd.oci.image.config.v1+json")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc,
            "layers": [layer_desc],
        }
    ).encode()
    manifest_desc = blob(manifest, "application/vnd.oci.image.manifest.v1+json")
    manifest_desc["platform"] = {"architecture": _goarch(), "os": "linux"}
    manifest_desc["annotations"] = {
        "io.containerd.image.name": ref,
        "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1],
    }
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [manifest_desc],
        }
    ).encode()
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": index,
        **{f"blobs/sha256/{hashlib.sha256(c).hexdigest()}": c for c in (layer, config, manifest)},
    }
    with tarfile.open(out, "w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return out


# ------------------------------------------------------------------------------------------ containerd


def _containerd_config(state: Path) -> Path:
    node = node_dir(state)
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    text = f"""version = 2
root = "{node / "containerd" / "root"}"
state = "{node / "containerd" / "state"}"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{_socket(state)}"

[{cri}]
  sandbox_image = "{IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{shutil.which("runc")}"
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{node / "cni" / "net.d"}"
"""
    path = node / "containerd.toml"
    path.write_text(text)
    return path


def _cni_config(state: Path) -> None:
    node = node_dir(state)
    conf = {
        "cniVersion": "1.0.0",
        "name": "dso-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": CNI_BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET}]],
                    "dataDir": str(node / "cni" / "ipam"),
                },
            },
            {"type": "loopback"},
        ],
    }
    (node / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
    (node / "cni" / "net.d" / "10-dso-pods.conflist").write_text(json.dumps(conf, indent=2))


def ctr(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ctr", f"--address={_socket(state)}", "--namespace=k8s.io", *args],
        check=check,
        capture_output=True,
        text=True,
    )


def _ensure_bridge() -> None:
    """The CNI bridge with its gateway address, made now rather than at the first pod's CNI ADD, so host
    services can listen on GATEWAY before any pod exists (the bridge plugin keeps an existing bridge and
    an address it would have set itself)."""
    link = Path(f"/sys/class/net/{CNI_BRIDGE}")
    if not link.exists():
        subprocess.run(["ip", "link", "add", CNI_BRIDGE, "type", "bridge"], check=True, capture_output=True)
    addrs = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", CNI_BRIDGE], check=True, capture_output=True, text=True
    ).stdout
    prefix = POD_SUBNET.rsplit("/", 1)[1]
    if f" {GATEWAY}/{prefix} " not in addrs:
        subprocess.run(
            ["ip", "addr", "add", f"{GATEWAY}/{prefix}", "dev", CNI_BRIDGE], check=True, capture_output=True
        )
    subprocess.run(["ip", "link", "set", CNI_BRIDGE, "up"], check=True, capture_output=True)


def _start_containerd(state: Path) -> None:
    config = _containerd_config(state)
    _cni_config(state)
    _ensure_bridge()
    processes.start("containerd", ["containerd", f"--config={config}", "--log-level=info"], state)
    processes.wait_until(lambda: ctr(state, "version").returncode == 0, 60, "containerd to answer")
    archive = oci_archive(tiny_binary(), IMAGE, node_dir(state) / "tiny-image.tar")
    ctr(state, "images", "import", "--all-platforms", str(archive))
    # CRI sees images through containerd's event stream; wait until its image service lists ours.
    processes.wait_until(
        lambda: IMAGE in ctr(state, "images", "ls", "-q").stdout, 30, f"{IMAGE} in containerd"
    )


def podman_image_id(image: str) -> str | None:
    """The ID of `image` in podman's store, or None (no podman, or no such image). Never pulls."""
    if not shutil.which("podman"):
        return None
    result = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", image], capture_output=True, text=True
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def import_podman_image(image: str, state: Path = STATE_DIR) -> str:
    """Loads `image` (a fully qualified name, e.g. localhost/...) from podman's store into the node's
    containerd (k8s.io namespace) and returns the name containerd lists it under. The OCI archive is
    cached under CACHE/images by image ID (`podman save` of a GB-sized image takes a while); the import
    itself is redone per node start, since `down` removes containerd's root."""
    image_id = podman_image_id(image)
    if image_id is None:
        raise RuntimeError(f"{image} is not in podman's image store")
    archive = CACHE / "images" / f"{image_id[:16]}.oci.tar"
    if not archive.exists():
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        subprocess.run(
            ["podman", "save", "--format", "oci-archive", "-o", str(partial), image],
            check=True,
            capture_output=True,
        )
        partial.rename(archive)
    # podman writes the tag as the ref name; --base-name gives it containerd's full name
    base = image.rsplit(":", 1)[0]
    ctr(state, "images", "import", f"--base-name={base}", str(archive))
    processes.wait_until(lambda: image in ctr(state, "images", "ls", "-q").stdout.split(), 60, f"{image}")
    return image


# -------------------------------------------------------------------------------------------- kubelet


def node_ip() -> str:
    """The address of the default route's interface (kubelet refuses a loopback node IP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("10.255.255.255", 9))  # UDP connect sends nothing; it only picks a source address
        return sock.getsockname()[0]


def _kubeconfig(state: Path, server: str) -> Path:
    import base64

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    p, node = state / "pki", node_dir(state)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority-data": b64(p / "ca.crt")}}
        ],
        "users": [
            {
                "name": REAL_NODE,
                "user": {
                    "client-certificate-data": b64(node / "pki" / "node-client.crt"),
                    "client-key-data": b64(node / "pki" / "node-client.key"),
                },
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": REAL_NODE}}],
        "current-context": "local",
    }
    path = node / "kubelet.kubeconfig"
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


def _kubelet_config(state: Path, ports: dict[str, int]) -> Path:
    node = node_dir(state)
    resolv = node / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions ndots:1\n")  # pods here need no DNS
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "0.0.0.0",
        "port": ports["kubelet"],
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports["healthz"],
        "tlsCertFile": str(node / "pki" / "node-serving.crt"),
        "tlsPrivateKeyFile": str(node / "pki" / "node-serving.key"),
        "authentication": {
            "x509": {"clientCAFile": str(state / "pki" / "ca.crt")},
            "webhook": {"enabled": False},
            "anonymous": {"enabled": False},
        },
        "authorization": {"mode": "AlwaysAllow"},  # only the apiserver's client cert gets past x509
        "containerRuntimeEndpoint": f"unix://{_socket(state)}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        "localStorageCapacityIsolation": False,
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": False,
        "oomScoreAdj": 0,
        "resolvConf": str(resolv),
        "clusterDomain": "cluster.local",
        "registerWithTaints": [REAL_TAINT],
        "maxPods": 20,
        "serializeImagePulls": False,
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "podPidsLimit": -1,
        "nodeStatusUpdateFrequency": "5s",
    }
    path = node / "kubelet-config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def _api(kubeconfig: Path):
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))


def _bind_node_role(kubeconfig: Path) -> None:
    """The cluster authorizes by RBAC only (no Node authorizer): bind system:node to the nodes' group."""
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    rbac = client.RbacAuthorizationV1Api(config.new_client_from_config(str(kubeconfig)))
    body = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "dso-real-kubelet-nodes"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}],
    }
    try:
        rbac.create_cluster_role_binding(body)
    except ApiException as exc:
        if exc.status != 409:
            raise


def node_ready(kubeconfig: Path) -> bool:
    node = _api(kubeconfig).read_node(REAL_NODE)
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def advertise_gpus(kubeconfig: Path, count: int = 1) -> None:
    """nvidia.com/gpu as an extended resource, as the Kubernetes docs advertise one: PATCH node status."""
    patch = {"status": {"capacity": {"nvidia.com/gpu": str(count)}}}
    _api(kubeconfig).patch_node_status(REAL_NODE, patch)

    def allocatable() -> bool:
        status = _api(kubeconfig).read_node(REAL_NODE).status
        return (status.allocatable or {}).get("nvidia.com/gpu") == str(count)

    processes.wait_until(allocatable, 60, f"nvidia.com/gpu: {count} allocatable on {REAL_NODE}")


def up(state: Path = STATE_DIR, timeout: float = 180) -> Path:
    """Starts containerd and the kubelet on the running cluster in `state`; returns when the node is Ready
    and advertises one nvidia.com/gpu. Returns the admin kubeconfig."""
    if reason := unavailable():
        raise RuntimeError(f"real kubelet unavailable: {reason}")
    kubeconfig = state / "kubeconfig"
    server = json.loads((state / "state.json").read_text())["server"]
    down(state)
    node = node_dir(state)
    (node / "pki").mkdir(parents=True, exist_ok=True)
    ip = node_ip()
    pki.node_certs(state / "pki", node / "pki", REAL_NODE, ("127.0.0.1", ip))
    _bind_node_role(kubeconfig)
    started = time.monotonic()
    try:
        _start_containerd(state)
        ports = {"kubelet": processes.free_port(), "healthz": processes.free_port()}
        argv = [
            str(build.kubelet_binary()),
            f"--config={_kubelet_config(state, ports)}",
            f"--kubeconfig={_kubeconfig(state, server)}",
            f"--root-dir={node / 'kubelet'}",
            f"--cert-dir={node / 'pki'}",
            f"--hostname-override={REAL_NODE}",
            f"--node-ip={ip}",
            "--v=2",
        ]
        pid = processes.start("kubelet", argv, state)

        def ready() -> bool:
            if not processes.alive(pid):  # e.g. a configuration it refuses: say so now, not at the timeout
                raise KubeletExited(f"real kubelet exited; see {state / 'logs' / 'kubelet.log'}")
            try:
                return node_ready(kubeconfig)
            except Exception:  # not registered yet
                return False

        processes.wait_until(ready, timeout, f"node {REAL_NODE} Ready")
        advertise_gpus(kubeconfig)
    except BaseException:
        print(f"real kubelet: start failed; logs: {state / 'logs'}/kubelet.log, containerd.log")
        raise
    print(f"real kubelet: node {REAL_NODE} Ready in {time.monotonic() - started:.1f}s (nvidia.com/gpu: 1)")
    return kubeconfig


def _unmount_under(root: Path) -> None:
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    prefix = str(root) + "/"
    for target in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


def down(state: Path = STATE_DIR) -> None:
    """Stops the kubelet, kills and removes every container it left, stops containerd, removes its files."""
    processes.stop("kubelet", state)
    pids = processes.recorded(state)
    if "containerd" in pids and processes.alive(pids["containerd"]):
        for task in ctr(state, "tasks", "ls", "-q", check=False).stdout.split():
            ctr(state, "tasks", "kill", "--all", "--signal=SIGKILL", task, check=False)
        for task in ctr(state, "tasks", "ls", "-q", check=False).stdout.split():
            ctr(state, "tasks", "delete", "--force", task, check=False)
        for container in ctr(state, "containers", "ls", "-q", check=False).stdout.split():
            ctr(state, "containers", "delete", container, check=False)
    processes.stop("containerd", state)
    node = node_dir(state)
    if node.exists():
        _unmount_under(node)
        shutil.rmtree(node, ignore_errors=True)
    if Path(f"/sys/class/net/{CNI_BRIDGE}").exists():
        subprocess.run(["ip", "link", "delete", CNI_BRIDGE], check=False, capture_output=True)
