"""The kubelet's log endpoint for the node agent, so `kubectl logs` works: the apiserver proxies
`/api/v1/namespaces/<ns>/pods/<pod>/log` to `https://<node>:<port>/containerLogs/<ns>/<pod>/<container>`.

Pods that ran as processes keep their logs in the agent's state directory; simulated pods never ran
anything, and say so.
"""

from __future__ import annotations

import http.server
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlparse

SIMULATED = b"(simulated pod: the node agent moved its phases; no process ran, so there is no log)\n"


def select_lines(data: bytes, tail_lines: int | None, limit_bytes: int | None) -> bytes:
    if tail_lines is not None:
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-tail_lines:]) if tail_lines else b""
    if limit_bytes is not None:
        data = data[:limit_bytes]
    return data


def serve(
    pods_dir: Path, port: int, cert: Path, key: Path, is_running: Callable[[str, str], bool]
) -> http.server.ThreadingHTTPServer:
    """Starts the HTTPS endpoint in a daemon thread. `is_running(namespace, pod)` drives `follow`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # the agent's log stays readable
            pass

        def do_GET(self) -> None:
            url = urlparse(self.path)
            parts = url.path.strip("/").split("/")
            if len(parts) != 4 or parts[0] != "containerLogs":
                self.send_error(404, "only /containerLogs/<namespace>/<pod>/<container> is served")
                return
            _, namespace, pod, container = parts
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            runs = sorted(pods_dir.glob(f"{namespace}_{pod}_*"), key=lambda p: p.stat().st_mtime)
            log = runs[-1] / "logs" / f"{container}.log" if runs else None
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            if log is None or not log.exists():
                self.wfile.write(SIMULATED)
                return
            tail = int(query["tailLines"]) if "tailLines" in query else None
            limit = int(query["limitBytes"]) if "limitBytes" in query else None
            data = select_lines(log.read_bytes(), tail, limit)
            self.wfile.write(data)
            if query.get("follow") == "true":
                self._follow(log, len(log.read_bytes()), namespace, pod)

        def _follow(self, log: Path, offset: int, namespace: str, pod: str) -> None:
            with open(log, "rb") as handle:
                handle.seek(offset)
                while True:
                    chunk = handle.read()
                    if chunk:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    elif not is_running(namespace, pod):
                        return
                    else:
                        time.sleep(0.2)  # polling a file for new log lines, not synchronising a test

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="kubelet-logs", daemon=True).start()
    return server
