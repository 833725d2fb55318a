"""``moksha start``'s site (create_app around a hub with its live socket) for browser tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from moksha.config import load_config
from moksha.hub import CentralMokshaHub
from moksha.livesocket import LiveSocket, LiveSocketServer, listen
from moksha.web import create_app
from support import TIMEOUT, until

PAGE_TIMEOUT_MS = 5000


class Site:
    """``create_app`` around a hub, served on 127.0.0.1 from a loop in its own thread."""

    def __init__(self, settings: dict[str, Any], consumers: list[type[Any]]) -> None:
        self.config = load_config(
            overrides={**settings, "moksha.dashboard.demo": False}, environ={}, search=False
        )
        self.consumers = consumers
        self.live: LiveSocket | None = None
        self.url = ""
        self.hub: CentralMokshaHub | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    def __enter__(self) -> Site:
        self._thread.start()
        assert self._ready.wait(10), "the site did not start within 10 s"
        return self

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with CentralMokshaHub(self.config, self.consumers, []) as hub:
            self.hub = hub
            live = LiveSocket(hub, self.config)
            await live.start()
            self.live = live
            app = create_app(hub, self.config, live=live)
            server = LiveSocketServer(app, listen("127.0.0.1", 0), 1 << 20)
            serving = asyncio.create_task(server.serve())
            self.url = server.url
            self._ready.set()
            await self._stop.wait()
            server.stop()
            await serving
            await app.aclose()
            await live.aclose()

    def send(self, topic: str, body: Any) -> None:
        assert self.hub is not None and self._loop is not None
        asyncio.run_coroutine_threadsafe(self.hub.publish(topic, body), self._loop).result(5)

    def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait (bounded, on the site's loop) until ``condition()`` holds."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(until(condition), self._loop).result(TIMEOUT * 2)

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
