"""Fixtures for the live-socket tests: hubs serving it, a real browser, a second web origin."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from moksha.hub import CentralMokshaHub

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

# Every browser wait is bounded by this (milliseconds); a page that needs longer is broken.
PAGE_TIMEOUT_MS = 5000

StartHub = Callable[..., CentralMokshaHub]


@pytest.fixture
def start_hub() -> Iterator[StartHub]:
    """Start hubs serving the live socket on a free port (memory bus); all closed at teardown.

    ``start_hub({"moksha.livesocket.publish_allow": "chat.#"})`` adds config keys;
    ``hub.livesocket_url`` is where it listens.
    """
    hubs: list[CentralMokshaHub] = []

    def start(config: Mapping[str, Any] | None = None) -> CentralMokshaHub:
        settings = {
            "moksha.backends": "memory",
            "moksha.livesocket.backend": "websocket",
            "moksha.livesocket.websocket.port": 0,
            **(config or {}),
        }
        # Playwright's sync API keeps an event loop marked running on this thread, so a hub
        # made here would think it is in async code and wait for ``await hub.start()``.
        # Made on another thread, it starts its own loop thread as in any plain program.
        with ThreadPoolExecutor(1) as pool:
            hub = pool.submit(CentralMokshaHub, settings).result()
        hubs.append(hub)
        return hub

    yield start
    for hub in reversed(hubs):
        hub.close()  # closing twice is harmless, so tests may close theirs first


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in its own browser context (no shared cache, cookies or offline state)."""
    context = browser.new_context()
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # pytest shows failures; a line per request would drown them


@dataclass
class Site:
    """A web site on another origin than the hub's: its files are those written to ``root``."""

    url: str
    root: Path

    def page(self, name: str, html: str) -> str:
        """Write ``name`` with ``html`` and return its URL."""
        (self.root / name).write_text(html)
        return f"{self.url}/{name}"


@pytest.fixture
def other_origin(tmp_path: Path) -> Iterator[Site]:
    """A plain HTTP server on another 127.0.0.1 port, serving a temporary directory."""
    root = tmp_path / "site"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="other origin", daemon=True)
    thread.start()
    yield Site(f"http://127.0.0.1:{server.server_address[1]}", root)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
