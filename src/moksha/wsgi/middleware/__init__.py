"""The original ``moksha.wsgi.middleware``: ``make_moksha_middleware(app, config)``.

A WSGI app written for Moksha 1.x (TurboGears 2, Pyramid, Flask) wraps itself
as the original tutorials show::

    from moksha.wsgi.middleware import make_moksha_middleware
    app = make_moksha_middleware(app, config)

and gets :class:`moksha.web.MokshaWSGIMiddleware`: Moksha's pages, apps,
widgets and static files, the resources of the widgets a page displayed
(ToscaWidgets2 ones included, with tw2's request-local context opened per
request) and the live-socket client.  The original's separate layers
(``moksha.extensionpoints``, ``moksha.registry``) are no longer needed: the
options that turned them on are accepted and have nothing left to do.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from moksha.config import Config
from moksha.web.wsgi import MokshaWSGIMiddleware, WSGIApp

__all__ = ["MokshaMiddleware", "make_moksha_middleware"]

log = logging.getLogger("moksha.wsgi")

MokshaMiddleware = MokshaWSGIMiddleware
"""The original's class name for the same middleware."""

# The original's socket backends: browsers spoke STOMP or AMQP through Orbited.
_BROKER_SOCKETS = {"stomp", "amqp"}


def make_moksha_middleware(
    app: WSGIApp, config: Config | Mapping[str, Any] | None = None
) -> MokshaWSGIMiddleware:
    """``app`` wrapped in Moksha, as Moksha 1.x's ``make_moksha_middleware`` did.

    Args:
        app: the WSGI app.
        config: the app's settings (a TurboGears/Pyramid config mapping works as
            is: keys Moksha does not know are left alone).  A
            ``moksha.livesocket.backend`` of ``stomp`` or ``amqp`` (browsers
            talking to the broker through Orbited) means the hub's own live
            socket now: one WebSocket serves every bus.

    Returns:
        The WSGI app to serve (close it with ``.close()`` on shutdown).

    Raises:
        ConfigError: a Moksha setting in ``config`` is wrong.
    """
    if isinstance(config, Mapping):
        backend = str(config.get("moksha.livesocket.backend", "")).lower()
        if backend in _BROKER_SOCKETS:
            log.info(
                "moksha.livesocket.backend = %s: browsers now use the hub's live socket "
                "(a WebSocket serving every bus); Orbited is no longer needed",
                backend,
            )
            config = {**config, "moksha.livesocket.backend": "websocket"}
    return MokshaWSGIMiddleware(app, config)
