"""k8s.Cluster against a server that accepts connections and never answers (issue 14: a create blocked for
more than 150 s): every call gives up within its policy's budget."""

from __future__ import annotations

import socket
import time

import pytest
from deepspeech_operator.k8s import Cluster
from deepspeech_operator.timeouts import CallPolicy
from kubernetes import client

JOB = {"kind": "Job", "metadata": {"name": "j", "namespace": "ns"}}


@pytest.fixture
def silent_server():
    """Listens (the kernel completes the TCP handshake) but never reads or answers anything."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield server.getsockname()[1]


def test_calls_give_up_within_their_budget(silent_server):
    configuration = client.Configuration(host=f"https://127.0.0.1:{silent_server}")
    configuration.retries = False
    policy = CallPolicy(read_timeout=0.5, connect_timeout=0.5, attempts=2, first_backoff=0.1)
    cluster = Cluster(client.ApiClient(configuration), policy=policy)
    for call in (
        lambda: cluster.create_or_adopt(JOB, "uid"),
        lambda: cluster.poke("ns", "cr", "v"),
        lambda: cluster.delete_job("ns", "j", "Background"),
    ):
        started = time.monotonic()
        with pytest.raises(Exception):  # noqa: B017 - which one depends on where the handshake stalls
            call()
        assert time.monotonic() - started < policy.budget() + 1.0
