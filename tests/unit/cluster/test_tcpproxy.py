"""The fault tests' black-hole proxy (tests/cluster/tcpproxy.py), against a loopback echo server."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.cluster.tcpproxy import BlackholeProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    return sock.recv(4096)


def test_forwards_until_blackholed_then_only_new_connections_answer(echo_port):
    with BlackholeProxy("127.0.0.1", echo_port, lifetime=60) as proxy:
        old = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        assert _roundtrip(old, b"ping") == b"ping"
        assert proxy.blackhole() == 1
        old.settimeout(0.5)
        old.sendall(b"lost")
        with pytest.raises(TimeoutError):
            old.recv(4096)  # open, but silent: no answer and no close
        fresh = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        assert _roundtrip(fresh, b"again") == b"again"
        old.close()
        fresh.close()


def test_stops_itself_after_its_lifetime(echo_port):
    proxy = BlackholeProxy("127.0.0.1", echo_port, lifetime=0.5)
    port = proxy.start()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(5)
    assert sock.recv(4096) == b""  # closed by the proxy's own shutdown, with no help from the test
    sock.close()
    proxy.stop()
