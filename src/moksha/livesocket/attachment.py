"""The live socket as a hub attachment (entry point ``moksha.hub.attachment: livesocket``).

With ``moksha.livesocket.backend = websocket``, ``moksha hub`` serves the live
socket on ``moksha.livesocket.websocket.port``: this attachment opens it once
the hub's consumers and producers run, and closes it first when the hub
stops, with :func:`stop_serving` (``moksha start``, which serves the live socket
on its web port, stops the same way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from moksha.cluster.attachment import hub_cluster
from moksha.config import Config
from moksha.errors import ConfigError
from moksha.livesocket.fanout import LiveSocket
from moksha.livesocket.server import LiveSocketServer, listen, livesocket_app

if TYPE_CHECKING:
    from moksha.hub import CentralMokshaHub

__all__ = ["LiveSocketAttachment", "stop_serving"]

log = logging.getLogger("moksha.livesocket")


class LiveSocketAttachment:
    """The live socket of ``moksha hub``, on its own port.

    Attributes:
        live: the live socket, once started.
        url: where it listens (``http://host:port``), once started.
    """

    name = "livesocket"
    serves = True

    def __init__(self, config: Config) -> None:
        self.config = config
        self.live: LiveSocket | None = None
        self.url: str | None = None
        self._server: LiveSocketServer | None = None
        self._serving: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, config: Config) -> LiveSocketAttachment | None:
        """The attachment ``moksha.livesocket.backend = websocket`` asks for, else None.

        Raises:
            ConfigError: the backend is not one Moksha has.
        """
        backend = config.livesocket_backend
        if backend is None:
            return None
        if backend != "websocket":
            raise ConfigError(
                f"{backend!r} is not a live-socket backend Moksha has; use websocket",
                key="moksha.livesocket.backend",
                source=config.source("moksha.livesocket.backend"),
            )
        return cls(config)

    async def start(self, hub: CentralMokshaHub) -> None:
        """Listen, start the live socket on the hub, serve it (with ``hub.livesocket_routes``).

        Raises:
            ConfigError: the port cannot be used.
        """
        config = self.config
        sock = listen(config.livesocket_websocket_interface, config.livesocket_websocket_port)
        history = None
        cluster = hub_cluster(hub)
        if config.archive:
            from moksha.archive.recovery import archive_history

            history = archive_history(config, cluster=cluster)
        live = LiveSocket(hub, config, history=history, cluster=cluster)
        try:
            await live.start()
        except BaseException:
            sock.close()
            raise
        app = livesocket_app(live)
        app.router.routes.extend(hub.livesocket_routes)
        self._server = LiveSocketServer(app, sock, live.policy.max_frame_bytes)
        self._serving = asyncio.create_task(self._server.serve(), name="moksha live socket")
        self.live = live
        self.url = self._server.url
        log.info("live socket listening on %s", self.url)

    async def aclose(self) -> None:
        """Stop accepting, drain the clients (at most ``moksha.shutdown_timeout``), stop."""
        if self.live is None or self._server is None or self._serving is None:
            return
        await stop_serving(self._server, self._serving, self.live, self.config.shutdown_timeout)
        await self.live.aclose()  # kept: its numbers can still be read
        self._serving = None


async def stop_serving(
    server: LiveSocketServer,
    serving: asyncio.Task[None],
    live: LiveSocket,
    timeout: float,
) -> None:
    """What a stopping node does with its live socket, in this order.

    1. Stop accepting: the listening socket closes (new connections are refused,
       so a load balancer sends them to another node) and the live socket
       refuses new WebSocket and SSE clients on connections already open (503);
       ``/ready`` turns not ready.
    2. Drain: each client gets the frames queued for it, then close 1012
       ("service restart"), and reconnects, to another node, with no gap.
    3. Wait (at most ``timeout`` seconds) until the clients are gone: each
       WebSocket client answered the close, each SSE stream ended.
    4. Stop the server (open HTTP requests get two seconds).

    Args:
        server: the server of the live socket (or of the whole site).
        serving: the task running ``server.serve()``; awaited here.
        live: the live socket.
        timeout: the longest wait for the clients, in seconds.
    """
    server.stop_accepting()
    live.drain()
    try:
        async with asyncio.timeout(timeout):
            await live.drained()
    except TimeoutError:
        log.warning(
            "some live-socket clients had not closed after %ss (moksha.shutdown_timeout): "
            "closing them",
            timeout,
        )
    for client in list(live.clients):
        live.disconnect(client)
    server.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await serving
