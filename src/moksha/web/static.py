"""Moksha's static files (``/_moksha/static/...``), cached by browsers for an hour."""

from __future__ import annotations

from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["STATIC_CACHE_CONTROL", "CachedStatic", "static_files"]

STATIC_CACHE_CONTROL = b"public, max-age=3600"


def static_files() -> CachedStatic:
    """The ASGI app serving the ``moksha/static`` package directory, with caching."""
    return CachedStatic(StaticFiles(packages=[("moksha", "static")]))


class CachedStatic:
    """Static files with ``Cache-Control: public, max-age=3600`` on what they serve."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def caching_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (200, 304):
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"
                ]
                headers.append((b"cache-control", STATIC_CACHE_CONTROL))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, caching_send)
