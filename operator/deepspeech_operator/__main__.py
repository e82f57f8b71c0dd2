"""Entry point: `python -m deepspeech_operator` or the `deepspeech-operator` script."""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Sequence

import kopf

from . import handlers, metrics
from .config import ConfigError, parse
from .k8s import Cluster, load_config, own_account
from .timeouts import CallPolicy


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
