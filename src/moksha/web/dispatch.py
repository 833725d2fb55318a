"""Moksha's own routes first, then the wrapped app: the innermost layer of the middleware.

:class:`Dispatcher` answers the live socket's paths (when the middleware
serves it), the static files, the widget pages and the installed apps, and
passes everything else, WebSockets included, to the wrapped app untouched.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LIVESOCKET_PREFIX", "Dispatcher", "route_path"]

LIVESOCKET_PREFIX = "/livesocket"


def route_path(scope: Scope) -> str:
    """The request's path below the app's mount point (``root_path``)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    return path[len(root_path) :] if root_path and path.startswith(root_path) else path


class Dispatcher:
    """Moksha's routes first, then the fallback app.

    Not a Starlette ``Router``: a router leaves itself in ``scope["router"]``,
    and a wrapped Starlette app would then build its URLs with our routes.
    """

    def __init__(self, routes: list[BaseRoute], fallback: ASGIApp, live: ASGIApp | None) -> None:
        self.routes = routes
        self.fallback = fallback
        self.live = live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope)
        if self.live is not None and (
            path == LIVESOCKET_PREFIX or path.startswith(LIVESOCKET_PREFIX + "/")
        ):
            await self.live(scope, receive, send)
            return
        partial: tuple[BaseRoute, Scope] | None = None
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial = (route, child_scope)
        if partial is not None:  # the path is ours, the method is not (a 405)
            route, child_scope = partial
            scope.update(child_scope)
            await route.handle(scope, receive, send)
            return
        if scope["type"] == "http" and self._is_mount_without_slash(scope):
            url = Request(scope).url
            await RedirectResponse(str(url.replace(path=url.path + "/")))(scope, receive, send)
            return
        await self.fallback(scope, receive, send)

    def _is_mount_without_slash(self, scope: Scope) -> bool:
        if scope["path"].endswith("/"):
            return False
        slashed = {**scope, "path": scope["path"] + "/"}
        return any(
            isinstance(route, Mount) and route.matches(slashed)[0] is Match.FULL
            for route in self.routes
        )
