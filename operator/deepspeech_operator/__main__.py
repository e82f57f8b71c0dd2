"""Entry point: `python -m deepspeech_operator` or the `deepspeech-operator` script."""

from __future__ import annotations

import dataclasses
import getpass
import logging
import os
import socket
import sys
from collections.abc import MutableMapping, Sequence

import kopf

from . import handlers, metrics
from .config import ConfigError, parse
from .k8s import Cluster, load_config, own_account
from .timeouts import CallPolicy


def ensure_identity(environ: MutableMapping[str, str] = os.environ) -> None:
    """kopf names this operator `<user>@<host>/...` (getpass) unless POD_ID is set. The image runs as a
    numeric USER with no /etc/passwd entry; podman adds one for it, a real kubelet with containerd does
    not, and getpass then raises `KeyError: 'getpwuid(): uid not found: 65532'` before the first request
    (found on the real kubelet node, docs/real-kubelet.md). Then POD_ID (kopf's own setting) names it."""
    if environ.get("POD_ID"):
        return
    try:
        getpass.getuser()
    except (KeyError, OSError):  # KeyError up to Python 3.12, OSError from 3.13
        environ["POD_ID"] = f"uid{os.getuid()}@{socket.gethostname()}"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse(argv)
    except ConfigError as exc:
        print(f"deepspeech-operator: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if config.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    load_config()
    ensure_identity()
    if not config.own_service_account:
        config = dataclasses.replace(config, own_service_account=own_account() or "")
    state = handlers.configure(config, Cluster(pool_size=handlers.API_THREADS, policy=CallPolicy.of(config)))
    metrics.serve(config.metrics_port)
    kopf.run(
        standalone=True,
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{config.liveness_port}/healthz",
        memo=kopf.Memo(state=state),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
