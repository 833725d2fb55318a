"""``create_app``: the whole Moksha site of ``moksha start``, as one ASGI app.

=============================  ===================================================
``/``                          the dashboard (moksha.widgets.dashboard)
``/_moksha/hub/status``        the hub status its panel reads
``/`` (WebSocket)              the live socket's original endpoint
``/livesocket/...``            the live socket: WebSocket, SSE, the JS client
``/_moksha/static/...``        Moksha's static files
``/apps/<name>/``              installed apps
``/widgets/<name>``            any widget on a page of its own
``/archive/...``               the archive, when ``moksha.archive = true``
                               (:mod:`moksha.archive.web`; the dashboard ``archive``)
=============================  ===================================================

When a ``moksha.root`` app is installed it answers ``/`` and every path nothing
else serves, and the dashboard moves to ``/_moksha/dashboard``.  The dashboard
and its status are the ``dashboard`` called ``main`` to the authorization hook
(``moksha.auth.allow.dashboard.main = ops``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.responses import RedirectResponse
from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Scope, Send

from moksha.config import Config
from moksha.web.context import web_context
from moksha.web.errors import not_found
from moksha.web.middleware import MokshaMiddleware
from moksha.web.mounts import installed_root

if TYPE_CHECKING:
    from moksha.hub.hub import MokshaHub
    from moksha.livesocket import LiveSocket

__all__ = ["DASHBOARD_NAME", "MOVED_DASHBOARD_PATH", "create_app"]

DASHBOARD_NAME = "main"
MOVED_DASHBOARD_PATH = "/_moksha/dashboard"
ARCHIVE = "/archive"
ARCHIVE_NAME = "archive"
"""Where the dashboard is when a ``moksha.root`` app has ``/``."""


def create_app(
    hub: MokshaHub,
    config: Config | Mapping[str, Any] | None = None,
    *,
    live: LiveSocket | None = None,
) -> MokshaMiddleware:
    """Moksha's site around ``hub``: dashboard, live socket, apps, widgets, static files.

    Args:
        hub: a started hub; its status is shown and the dashboard's widgets
            show its messages.
        config: as for :class:`~moksha.web.MokshaMiddleware` (default: the hub's).
        live: the live socket to serve on this app's port (started by the caller,
            on the loop that serves the app).  Without one, pages use the hub's own
            live-socket port when the config gives it one.

    Returns:
        The ASGI app; ``await app.aclose()`` when done with it.

    Raises:
        ConfigError: a web or dashboard setting is wrong.
    """
    config = Config.coerce(config if config is not None else hub.config)
    # Imported here: moksha.widgets imports moksha.web, so not at import time.
    from moksha.widgets.dashboard import dashboard_routes

    dashboard = Router(routes=dashboard_routes(hub, config, livesocket=live), default=not_found)
    live_app = None
    if live is not None:
        from moksha.livesocket import livesocket_app

        live_app = livesocket_app(live)
    root = installed_root()
    archive = None
    store = None
    if config.archive:
        from moksha.archive.web import archive_app

        archive, store = archive_app(hub, config)
    site = _Site(dashboard, root.app if root is not None else None, live_app, archive)
    middleware = MokshaMiddleware(site, config, hub=hub, live=live)
    if store is not None:
        middleware.closing.append(store.close)
    return middleware


class _Site:
    """The app behind the middleware: the dashboard (guarded), the root app, the WebSocket at /."""

    def __init__(
        self,
        dashboard: ASGIApp,
        root: ASGIApp | None,
        live: ASGIApp | None,
        archive: ASGIApp | None = None,
    ) -> None:
        self.dashboard = dashboard
        self.root = root
        self.live = live
        self.archive = archive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if scope["type"] == "websocket" and path == "/" and self.live is not None:
            await self.live(scope, receive, send)  # the original clients' endpoint
        elif self.archive is not None and (path == ARCHIVE or path.startswith(ARCHIVE + "/")):
            await self._archive(scope, receive, send)
        elif self.root is None:
            await self._dashboard(scope, receive, send)
        elif path == MOVED_DASHBOARD_PATH:
            await self._dashboard({**scope, "path": "/", "raw_path": b"/"}, receive, send)
        elif path.startswith("/_moksha/"):
            await self._dashboard(scope, receive, send)
        else:
            await self.root(scope, receive, send)

    async def _archive(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.archive is not None
        if scope["path"] == ARCHIVE:
            await RedirectResponse(ARCHIVE + "/", 308)(scope, receive, send)
            return
        # As Starlette's Mount does: the full path stays, root_path says where the app sits.
        inner = {**scope, "root_path": scope.get("root_path", "") + ARCHIVE}
        guard = web_context(scope).guard
        await guard.protect(self.archive, "dashboard", ARCHIVE_NAME)(inner, receive, send)

    async def _dashboard(self, scope: Scope, receive: Receive, send: Send) -> None:
        guard = web_context(scope).guard
        await guard.protect(self.dashboard, "dashboard", DASHBOARD_NAME)(scope, receive, send)
