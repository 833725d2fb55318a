"""A TCP proxy a test controls: forward to a broker, cut every connection on demand.

Used to prove a backend survives a connection killed mid-stream::

    async with TcpProxy(5672) as proxy:
        config = {"amqp_broker": f"amqp://guest:guest@127.0.0.1:{proxy.port}/"}
        ...
        await proxy.cut()         # every open connection is closed at once
        proxy.refuse = True       # new connections are refused until set back

With ``tls``, the proxy's own side speaks TLS (a broker's TLS listener, terminated
here) and forwards the plain bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Self


class TcpProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to 127.0.0.1:``target_port``."""

    def __init__(
        self, target_port: int, target_host: str = "127.0.0.1", *, tls: ssl.SSLContext | None = None
    ) -> None:
        self.target = (target_host, target_port)
        self.tls = tls
        self.port = 0
        self.refuse = False
        self.connections_made = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self.cut()
        await self._server.wait_closed()

    async def cut(self) -> None:
        """Close every open connection, both sides."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections_made += 1
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.transport.abort()
        self._writers.discard(sink)
