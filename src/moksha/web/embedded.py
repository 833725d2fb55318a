"""Moksha inside an ASGI app's own process: a hub and its live socket, on the app's port.

::

    from fastapi import FastAPI
    from moksha.web import EmbeddedMoksha

    api = FastAPI()
    app = EmbeddedMoksha(api, {"moksha.backends": "memory"})   # uvicorn module:app

When the ASGI server starts the app (its *lifespan*), :class:`EmbeddedMoksha`
starts a :class:`~moksha.hub.CentralMokshaHub` on the server's event loop, a
:class:`~moksha.livesocket.LiveSocket` served at ``/livesocket`` on the same
port, and a :class:`~moksha.web.MokshaMiddleware` around the app; when the
server stops, it stops them in the reverse order.  Pages of the app that show
live widgets therefore work with no second process.  Handlers publish through
``web_context(request).hub`` (or ``app.hub``).

For a WSGI app (Flask), create the hub in the process instead and pass it to
:class:`~moksha.web.MokshaWSGIMiddleware` (see the README's Flask tutorial).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moksha.config import Config
from moksha.web.middleware import MokshaMiddleware

if TYPE_CHECKING:
    from moksha.hub import CentralMokshaHub
    from moksha.hub.api import Consumer, Producer
    from moksha.livesocket import LiveSocket

__all__ = ["EmbeddedMoksha"]

NOT_STARTED = (
    "Moksha has not started: serve this app with an ASGI server that runs the lifespan "
    "(uvicorn and hypercorn do), or call await app.start() first."
)


class EmbeddedMoksha:
    """An ASGI app: ``app`` with a hub, its live socket and Moksha's middleware, in-process.

    Args:
        app: the ASGI app (FastAPI, Starlette, ...) answering what Moksha does not.
        config: a Config, a mapping of settings, or None (the config file and
            ``MOKSHA_*``).  ``moksha.livesocket.backend`` is ignored: the live
            socket is served on the app's own port.
        consumers: consumer classes the hub runs; None: the installed ones.
        producers: producer classes the hub runs; None: the installed ones.
        options: keyword options of :class:`~moksha.web.MokshaMiddleware`
            (``cache``, ``identify``, ``authorizers``, ``collecting``).

    Attributes:
        hub: the running hub (None before start and after stop).
        live: the live socket (None before start and after stop).

    Raises:
        ConfigError: a setting is wrong.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: Config | Mapping[str, Any] | None = None,
        *,
        consumers: Sequence[type[Consumer]] | None = None,
        producers: Sequence[type[Producer]] | None = None,
        **options: Any,
    ) -> None:
        self.app = app
        config = Config.coerce(config)
        self.config = config.with_overrides({"moksha.livesocket.backend": None})
        self._consumers = consumers
        self._producers = producers
        self._options = options
        self.hub: CentralMokshaHub | None = None
        self.live: LiveSocket | None = None
        self._site: MokshaMiddleware | None = None

    async def start(self) -> None:
        """Start the hub, the live socket and the middleware on the running event loop.

        Raises:
            ConfigError, BackendError: the hub or the live socket cannot start.
        """
        if self._site is not None:
            return
        from moksha.hub import CentralMokshaHub
        from moksha.livesocket import LiveSocket

        async with contextlib.AsyncExitStack() as stack:
            # Created inside the running loop, the hub runs on it (no background thread).
            hub = CentralMokshaHub(self.config, self._consumers, self._producers)
            await hub.start()
            stack.push_async_callback(hub.aclose)
            live = LiveSocket(hub, self.config)
            await live.start()
            stack.push_async_callback(live.aclose)
            site = MokshaMiddleware(self.app, self.config, hub=hub, live=live, **self._options)
            stack.pop_all()  # started: aclose stops them from now on
        self.hub, self.live, self._site = hub, live, site

    async def aclose(self) -> None:
        """Stop the middleware, the live socket and the hub.  Closing twice is harmless."""
        site, live, hub = self._site, self.live, self.hub
        self._site = self.live = self.hub = None
        if site is not None:
            await site.aclose()
        if live is not None:
            for client in list(live.clients):
                live.disconnect(client)
            await live.aclose()
        if hub is not None:
            await hub.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if self._site is None:
            if scope["type"] == "http":
                await PlainTextResponse(NOT_STARTED, status_code=503)(scope, receive, send)
            return
        await self._site(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start Moksha at startup, then hand the lifespan to the app; stop Moksha after it."""
        startup = await receive()
        try:
            await self.start()
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        assert self._site is not None
        replay: list[Message] = [startup]

        async def app_receive() -> Message:
            return replay.pop() if replay else await receive()

        async def app_send(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.aclose()
            await send(message)

        await self._site(scope, app_receive, app_send)
