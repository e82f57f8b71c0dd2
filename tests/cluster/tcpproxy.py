"""A loopback TCP proxy for fault tests: it forwards to a target until told to black-hole.

`blackhole()` silences every connection the proxy holds at that moment: they stay open, bytes sent on them
are read and dropped in both directions, and nothing is ever answered, as when a NAT or load balancer
between a client and the API server loses its state. Connections opened afterwards are forwarded normally,
so a client that gives up on a dead connection and reconnects gets through (as a fresh operator did in the
fault probe of issue 14). TLS passes through untouched: the client still verifies the API server's
certificate, which names 127.0.0.1.

The proxy runs its own asyncio loop in a daemon thread, listens on 127.0.0.1 (or `listen_host`: the real
kubelet's pods reach a loopback-only server through one on their bridge's gateway address), and stops
itself after `lifetime` seconds even if the test forgets to.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

CHUNK = 65536


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.writers = (client, upstream)
        self.silenced = False
        self.closed = asyncio.Event()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
        self.closed.set()


class BlackholeProxy:
    def __init__(
        self, target_host: str, target_port: int, lifetime: float = 600.0, listen_host: str = "127.0.0.1"
    ) -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.lifetime = lifetime
        self.port = 0
        self.accepted = 0
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="blackhole-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._stopping = False

    # -- control, from the test's thread ------------------------------------------------------------------
    def start(self) -> int:
        """Listen on a free port of `listen_host` (loopback by default); returns it."""
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        self._loop.call_soon_threadsafe(self._loop.call_later, self.lifetime, self._shutdown)
        return self.port

    def blackhole(self) -> int:
        """Silence every connection open now; returns how many."""

        async def silence() -> int:
            for link in self._links:
                link.silenced = True
            return len(self._links)

        return asyncio.run_coroutine_threadsafe(silence(), self._loop).result(timeout=10)

    def open_connections(self) -> int:
        async def count() -> int:
            return len(self._links)

        return asyncio.run_coroutine_threadsafe(count(), self._loop).result(timeout=10)

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._shutdown)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> BlackholeProxy:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the proxy, on its own loop -----------------------------------------------------------------------
    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._accept, self.listen_host, 0)

    def _shutdown(self) -> None:
        if not self._stopping:
            self._stopping = True
            self._loop.create_task(self._close_all())

    async def _close_all(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.close()
        self._links.clear()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop.stop()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        link = _Link(client_writer, upstream_writer)
        self._links.add(link)
        try:
            await asyncio.gather(
                self._pump(link, client_reader, upstream_writer, from_client=True),
                self._pump(link, upstream_reader, client_writer, from_client=False),
            )
        finally:
            self._links.discard(link)
            link.close()

    @staticmethod
    async def _pump(
        link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, from_client: bool
    ) -> None:
        try:
            while data := await reader.read(CHUNK):
                if link.silenced:
                    continue  # read and dropped: the other side waits for an answer that never comes
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        # The client closing always ends the link (it gave up). The server closing is passed on only while
        # the link forwards: a silenced client must not learn anything, not even that the server left.
        if from_client or not link.silenced:
            link.close()
        else:
            await link.closed.wait()  # until the client closes (the other pump) or the proxy stops
