"""Moksha around a WSGI app (Flask, Pyramid, Django's WSGI handler), as a WSGI app.

::

    from moksha.web import MokshaWSGIMiddleware
    app.wsgi_app = MokshaWSGIMiddleware(app.wsgi_app, config)     # Flask

It is the same :class:`~moksha.web.MokshaMiddleware`, not a second
implementation: a2wsgi turns the WSGI app into ASGI, the middleware wraps it,
and a2wsgi turns the whole back into WSGI, running it on an event loop in a
thread of its own.  Served this way, the middleware adds everything but the
live socket: WSGI has no WebSockets, so pages of a WSGI app reach the live
socket of a hub running it on its own port (``moksha.livesocket.backend =
websocket``).  To serve a WSGI app under an ASGI server instead, with the live
socket on the same port, wrap it in a2wsgi's ``WSGIMiddleware`` and use
``MokshaMiddleware`` directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from a2wsgi import ASGIMiddleware, WSGIMiddleware

from moksha.config import Config
from moksha.hub.loop_thread import LoopThread
from moksha.web.middleware import MokshaMiddleware

__all__ = ["MokshaWSGIMiddleware"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class MokshaWSGIMiddleware:
    """A WSGI app: ``app`` with Moksha's pages, apps, widgets and static files.

    Args:
        app: the WSGI app answering what Moksha does not.
        config: as for :class:`~moksha.web.MokshaMiddleware`.
        options: the keyword options of :class:`~moksha.web.MokshaMiddleware`
            (``cache``, ``identify``, ``authorizers``, ``collecting``).

    Attributes:
        asgi: the ASGI middleware inside.

    Raises:
        ConfigError: a web setting is wrong.
    """

    def __init__(
        self, app: WSGIApp, config: Config | Mapping[str, Any] | None = None, **options: Any
    ) -> None:
        self.asgi = MokshaMiddleware(WSGIMiddleware(app), config, **options)  # type: ignore[arg-type]
        self._thread = LoopThread(name="moksha-web")
        self._wsgi = ASGIMiddleware(self.asgi, loop=self._thread.loop)  # type: ignore[arg-type]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return self._wsgi(environ, start_response)  # type: ignore[arg-type]

    def close(self) -> None:
        """Close the cache and stop the event loop's thread."""
        if self._thread.loop.is_closed():
            return
        self._thread.run(self.asgi.aclose(), timeout=10)
        self._thread.stop()
