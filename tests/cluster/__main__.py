"""`python -m tests.cluster build|up|down|status` (behind `make cluster-build|cluster-up|cluster-down`).

Optional, never part of `build` or `up`: `build-kubelet` builds a real kubelet, `kubelet-up` starts it
with containerd as a node of the running cluster, `kubelet-down` stops both (tests/cluster/realkubelet.py).
"""

from __future__ import annotations

import argparse
import sys

from tests.cluster import build, controlplane


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=controlplane.__doc__)
    parser.add_argument(
        "command", choices=["build", "up", "down", "status", "build-kubelet", "kubelet-up", "kubelet-down"]
    )
    command = parser.parse_args().command
    if command == "build":
        for name, path in build.ensure_binaries().items():
            print(f"{name}: {path}")
    elif command == "build-kubelet":
        print(f"kubelet: {build.ensure_kubelet()}")
    elif command == "kubelet-up":
        from tests.cluster import realkubelet

        realkubelet.up()
    elif command == "kubelet-down":
        from tests.cluster import realkubelet

        realkubelet.down()
        print("real kubelet: stopped and removed")
    elif command == "up":
        controlplane.up()
    elif command == "down":
        controlplane.down()
        print("cluster: stopped and removed")
    else:
        healthy = controlplane.healthy()
        print("cluster: running and ready" if healthy else "cluster: not running")
        return 0 if healthy else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
