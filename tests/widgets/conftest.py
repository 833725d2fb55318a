"""Fixtures for the widget tests: a web site around a hub (dashboard, live socket, static files),
and a real browser."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer, Producer
from moksha.livesocket import LiveSocketServer, listen, livesocket_app
from moksha.web.resources import STATIC_PREFIX
from moksha.widgets.dashboard import dashboard_routes

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

# Every browser wait is bounded by this (milliseconds).
PAGE_TIMEOUT_MS = 5000


class Site:
    """A hub and a web server on one origin: the dashboard at ``/``, the live socket,
    ``/_moksha/static``, and test pages at ``/test/<name>`` (HTML put in :attr:`pages`).

    Runs on an event loop of its own thread, the hub included, so the live socket's
    fan-out and the web server share that loop as they do under ``moksha start``.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        consumers: Sequence[type[Consumer]],
        producers: Sequence[type[Producer]],
    ) -> None:
        self.config = {
            "moksha.backends": "memory",
            "moksha.livesocket.backend": "websocket",
            "moksha.livesocket.websocket.port": 0,
            **config,
        }
        self.consumers, self.producers = list(consumers), list(producers)
        self.pages: dict[str, str] = {}
        self.url = ""
        self.hub: CentralMokshaHub | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="widgets site", daemon=True)

    def start(self) -> Site:
        self._thread.start()
        if not self._ready.wait(10):
            raise AssertionError("the test site did not start within 10 s")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with CentralMokshaHub(self.config, self.consumers, self.producers) as hub:
            assert hub.livesocket is not None
            self.hub = hub
            app = Starlette(
                routes=[
                    *dashboard_routes(hub, self.config),
                    Route("/test/{name}", self._page),
                    Mount(STATIC_PREFIX, StaticFiles(directory=str(files("moksha") / "static"))),
                    Mount("", livesocket_app(hub.livesocket)),
                ]
            )
            server = LiveSocketServer(app, listen("127.0.0.1", 0), 1 << 20)
            serving = asyncio.create_task(server.serve())
            self.url = server.url
            self._ready.set()
            await self._stop.wait()
            server.stop()
            await serving

    async def _page(self, request: Request) -> Response:
        html = self.pages.get(request.path_params["name"])
        return HTMLResponse(html) if html else Response("no such test page", status_code=404)

    def subscriptions(self) -> int:
        """How many patterns the live socket's clients follow."""
        assert self.hub is not None and self.hub.livesocket is not None
        count: int = self.hub.livesocket.stats()["subscriptions"]
        return count

    def wait_for_subscriptions(self, count: int, timeout: float = 5.0) -> None:
        """Return once the pages follow ``count`` patterns (bounded poll)."""
        pause = threading.Event()  # never set: its wait() is the pause between polls
        for _ in range(int(timeout / 0.02)):
            if self.subscriptions() >= count:
                return
            pause.wait(0.02)
        raise AssertionError(f"expected {count} subscriptions, have {self.subscriptions()}")

    def send(self, topic: str, body: Any) -> None:
        assert self.hub is not None
        self.hub.send_message(topic, body)

    def close(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)


StartSite = Callable[..., Site]


@pytest.fixture
def start_site() -> Iterator[StartSite]:
    """``start_site(config={...}, consumers=[...], producers=[...])``: a running :class:`Site`."""
    sites: list[Site] = []

    def start(
        config: Mapping[str, Any] | None = None,
        consumers: Sequence[type[Consumer]] = (),
        producers: Sequence[type[Producer]] = (),
    ) -> Site:
        site = Site(config or {}, consumers, producers)
        sites.append(site)
        return site.start()

    yield start
    for site in reversed(sites):
        site.close()


class ConsoleErrors(list[str]):
    """The page's console errors and uncaught exceptions, as text."""


@pytest.fixture
def console_errors() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture
def page(browser: Browser, console_errors: ConsoleErrors) -> Iterator[Page]:
    """A laptop-sized page in a fresh context; its console errors go to ``console_errors``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
    page.on("pageerror", lambda exc: console_errors.append(str(exc)))
    yield page
    context.close()
