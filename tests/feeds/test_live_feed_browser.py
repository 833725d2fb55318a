"""The live feed widget in a real browser (Chromium): new entries appear on top as the stream
publishes them, each once, at most ``limit``.

One site serves the page, Moksha's static files and the live socket on one
origin, around a hub running the feed stream against the local feed server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from feed_support import FeedServer, rss
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from moksha.feeds import FeedStream, feed_topic
from moksha.feeds.widgets import LiveFeedWidget
from moksha.hub import CentralMokshaHub
from moksha.livesocket import LiveSocketServer, listen, livesocket_app
from moksha.web.resources import STATIC_PREFIX
from moksha.widgets import render_page

if TYPE_CHECKING:
    from playwright.sync_api import Browser

TIMEOUT_MS = 5000


class Site:
    """The page at ``/``, the static files and the live socket, on a loop of their own thread."""

    def __init__(self, page: str, config: dict[str, Any]) -> None:
        self.page, self.config = page, config
        self.url = ""
        self.hub: CentralMokshaHub | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with CentralMokshaHub(self.config, [], [FeedStream]) as hub:
            assert hub.livesocket is not None
            self.hub = hub

            async def page(request: Request) -> HTMLResponse:
                return HTMLResponse(self.page)

            app = Starlette(
                routes=[
                    Route("/", page),
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

    def start(self) -> Site:
        self._thread.start()
        assert self._ready.wait(10), "the site did not start within 10 s"
        return self

    def wait_for_subscriptions(self, count: int) -> None:
        assert self.hub is not None and self.hub.livesocket is not None
        pause = threading.Event()  # never set: its wait() is the pause between checks
        for _ in range(250):
            if self.hub.livesocket.stats()["subscriptions"] >= count:
                return
            pause.wait(0.02)
        raise AssertionError("the page did not subscribe within 5 s")

    def send(self, topic: str, body: Any) -> None:
        assert self.hub is not None
        self.hub.send_message(topic, body)

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def site_for(feed_server: FeedServer) -> Iterator[Any]:
    sites: list[Site] = []

    def start(page: str, config: dict[str, Any]) -> Site:
        sites.append(Site(page, config).start())
        return sites[-1]

    yield start
    for site in sites:
        site.close()


def test_new_entries_appear_on_top_once_each(
    browser: Browser, feed_server: FeedServer, site_for: Any, tmp_path: Path, cache_url: str
) -> None:
    url = feed_server.put("/live.xml", rss("Live", [("b", "B"), ("a", "A")]))
    widget = LiveFeedWidget(cache=cache_url, url=url, limit=3)
    config = {
        "moksha.backends": "memory",
        "moksha.livesocket.backend": "websocket",
        "moksha.livesocket.websocket.port": 0,
        "moksha.feedaggregator": True,
        "feed.urls": url,
        "feed_cache": cache_url,  # the widget's: the stream reads what it fetched
        "feed.poll_frequency": 0.1,
        "feed.file": str(tmp_path / "feeds.txt"),
    }
    site = site_for(render_page(widget, title="News"), config)
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(site.url + "/")
        titles = page.locator(".moksha-feed-entries .moksha-entry-title")
        assert titles.all_text_contents() == ["B", "A"]  # rendered on the server
        site.wait_for_subscriptions(1)
        # An entry the page shows already (as the stream's first poll may send it): skipped.
        site.send(feed_topic(url), {"id": "b", "title": "B again", "link": None})
        feed_server.put("/live.xml", rss("Live", [("c", "C"), ("b", "B"), ("a", "A")]))
        page.locator(".moksha-feed-new", has_text="C").wait_for()
        assert titles.all_text_contents() == ["C", "B", "A"]
        feed_server.put("/live.xml", rss("Live", [("d", "D"), ("c", "C"), ("b", "B")]))
        page.locator(".moksha-feed-new", has_text="D").wait_for()
        assert titles.all_text_contents() == ["D", "C", "B"]  # limit=3
        link = page.locator(".moksha-feed-new a", has_text="D")
        assert link.get_attribute("href") == "https://example.org/d"
    finally:
        context.close()
    assert errors == []
