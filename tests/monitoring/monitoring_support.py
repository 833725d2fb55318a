"""Helpers of the monitoring tests: plugins that count, fail or wait; configs; HTTP clients."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.types import ASGIApp

from moksha.config import Config, load_config
from moksha.hub.api import Consumer, PollingProducer
from moksha.hub.backends.memory import MemoryBackend
from moksha.livesocket import LiveSocketServer, listen
from support import TIMEOUT

TOPIC = "org.example.sensor.kitchen"
PATTERN = "org.example.sensor.*"
FAIL = "fail"
INTERVAL = 0.2  # moksha.monitoring.interval in these tests


class Thermometer(Consumer):
    """Consumes sensor readings; a body of ``"fail"`` raises."""

    topic = PATTERN

    def consume(self, message: Any) -> None:
        if message.body == FAIL:
            raise ValueError("a reading that cannot be read")


class Gate(Consumer):
    """Blocks in ``consume`` until the test opens it, so messages wait in its backlog."""

    topic = "org.example.gate"
    opened = threading.Event()

    def consume(self, message: Any) -> None:
        self.opened.wait(TIMEOUT)


class Clock(PollingProducer):
    frequency = 60
    now = True

    def poll(self) -> None:
        self.send_message("org.example.clock", {"ticks": 1})


class FlakyBackend(MemoryBackend):
    """The memory bus, with a connection the test can cut and restore."""

    up = True

    @property
    def connected(self) -> bool:
        return self.up


def make_config(**settings: Any) -> Config:
    """The memory bus, no retries, the test's settings; no file, no environment."""
    base = {"moksha.backends": "memory", "moksha.max_retries": 0}
    return load_config(overrides=base | settings, environ={}, search=False)


def client(app: ASGIApp) -> httpx.AsyncClient:
    """An HTTP client calling ``app`` in-process."""
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@contextlib.asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """``app`` served by uvicorn on a free 127.0.0.1 port; yields its http:// URL."""
    server = LiveSocketServer(app, listen("127.0.0.1", 0), max_frame=65536)
    task = asyncio.create_task(server.serve())
    try:
        yield server.url
    finally:
        server.stop()
        await asyncio.wait_for(task, TIMEOUT)
