"""Helpers of the web tests: a config from settings, an in-process HTTP client, a real server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.types import ASGIApp

from moksha.config import Config, load_config
from moksha.livesocket import LiveSocketServer, listen
from support import TIMEOUT


def make_config(settings: dict[str, Any] | None = None) -> Config:
    """The built-in defaults and ``settings``; no file, no environment."""
    return load_config(overrides=settings or {}, environ={}, search=False)


def client(app: ASGIApp, **kwargs: Any) -> httpx.AsyncClient:
    """An HTTP client calling ``app`` in-process (no socket)."""
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", **kwargs)


@contextlib.asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """``app`` served by uvicorn on a free 127.0.0.1 port; yields its ws:// base URL."""
    server = LiveSocketServer(app, listen("127.0.0.1", 0), max_frame=65536)
    task = asyncio.create_task(server.serve())
    try:
        yield server.url.replace("http://", "ws://")
    finally:
        server.stop()
        await asyncio.wait_for(task, TIMEOUT)
