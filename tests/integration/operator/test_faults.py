"""Faults between the operator and the API server (issue 14): the operator must recover by itself.

The operator reaches the API server through a loopback proxy (tests/cluster/tcpproxy.py) that can
black-hole every connection established at one moment: they stay open and carry nothing, as when a NAT or
load balancer on the way loses its state. New connections are forwarded, so an operator that gives up on
dead connections (request timeouts, watch inactivity) reconnects and carries on.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from tests.cluster.tcpproxy import BlackholeProxy

from .conftest import Env, OperatorProcess, base_spec

pytestmark = pytest.mark.cluster

# Short timeouts keep the test fast; the bound below follows from them. The defaults are measured the same
# way (docs/operator.md "Dead connections"). The liveness stall bound is set below the API timeout, so that
# the one call that meets a dead pooled connection shows as "stuck" on /healthz while it waits; kopf serves
# a probe result for up to 10 s, so that wait (the API timeout) must be longer than 10 s + STALL_S.
API_TIMEOUT_S = 15
WATCH_TIMEOUT_S = 10
STALL_S = 2
FAST = (
    *("--api-timeout-seconds", str(API_TIMEOUT_S)),
    *("--watch-timeout-seconds", str(WATCH_TIMEOUT_S)),
    *("--liveness-stall-seconds", str(STALL_S)),
)
# A dead watch is noticed after the watch timeout plus kopf's margin (10 s), a dead pooled client connection
# after one API timeout; the rest is ordinary event handling.
RECOVERY_BOUND_S = WATCH_TIMEOUT_S + 10 + 2 * API_TIMEOUT_S + 20


def kubeconfig_via(kubeconfig: Path, port: int, target: Path) -> Path:
    """A copy of `kubeconfig` whose server is the proxy on 127.0.0.1:<port> (the certificate names
    127.0.0.1, so TLS verification still holds)."""
    config = yaml.safe_load(kubeconfig.read_text())
    for entry in config["clusters"]:
        server = urlsplit(entry["cluster"]["server"])
        entry["cluster"]["server"] = urlunsplit(server._replace(netloc=f"127.0.0.1:{port}"))
    target.write_text(yaml.safe_dump(config))
    return target


def api_address(kubeconfig: Path) -> tuple[str, int]:
    server = urlsplit(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
    assert server.hostname and server.port, server
    return server.hostname, server.port


def healthz(op: OperatorProcess) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{op.liveness_port}/healthz", timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_blackholed_connections_do_not_wedge_reconciliation(k8s, crd, namespace, tmp_path, record_property):
    """Issue 14 item 1: the preflight pod succeeds while every connection of the operator is black-holed;
    the CR still moves on to training, within a bound, with no operator restart."""
    with BlackholeProxy(*api_address(k8s.kubeconfig), lifetime=300) as proxy:
        kubeconfig = kubeconfig_via(k8s.kubeconfig, proxy.port, tmp_path / "kubeconfig")
        op = OperatorProcess(kubeconfig, namespace, tmp_path / "operator.log", extra_args=FAST)
        op.start()
        try:
            env = Env(k8s, namespace, op)
            env.hold_pods()
            env.apply("bh", base_spec())
            pre = env.wait("preflight pod", lambda: env.running_pod("bh-g1-preflight"))
            env.wait_phase("bh", "Validating")
            env.wait("liveness endpoint up", lambda: healthz(op) == 200)
            silenced = proxy.blackhole()
            assert silenced >= 3, f"only {silenced} connections: the watch streams alone are three"
            started = time.monotonic()
            env.finish_pod(pre.metadata.name, 0)  # the test's own client goes to the API server directly
            health: list[int] = []

            def training() -> object:
                health.append(healthz(op))
                return env.running_pod("bh-g1-train")

            env.wait("train pod after the black hole", training, RECOVERY_BOUND_S)
            env.wait_phase("bh", "Running", timeout=RECOVERY_BOUND_S)
            recovered_s = time.monotonic() - started
            record_property("blackhole_recovery_s", round(recovered_s, 1))
            print(
                f"\nblack-holed connections: {silenced}; CR Running {recovered_s:.1f}s after the preflight pod"
            )
            assert env.job_names() == ["bh-g1-preflight", "bh-g1-train"]
            assert op.proc is not None and op.proc.poll() is None, (
                "the operator must recover without a restart"
            )
            # While its call waited on a dead connection the operator said so; once through, it is healthy.
            assert 500 in health, f"/healthz never failed while a call was stuck: {sorted(set(health))}"
            env.wait("/healthz back to 200", lambda: healthz(op) == 200, timeout=20)
        finally:
            op.stop()
