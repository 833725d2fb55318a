"""A page with a live widget but no live socket says what to start, in the page and the log."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from moksha.web import MokshaMiddleware
from moksha.web.liveclient import NO_LIVESOCKET
from moksha.widgets import LiveWidget

if TYPE_CHECKING:
    from playwright.sync_api import Browser


class Ticker(LiveWidget):
    topic = "example.ticks"
    template = "<ul id='{{ id }}'></ul>"
    onmessage = "this.textContent = json.n"


async def page(request: Request) -> HTMLResponse:
    head = '<head><link rel="icon" href="data:,"></head>'
    return HTMLResponse(f"<!doctype html><html>{head}<body>{Ticker().render()}</body></html>")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def site_without_livesocket() -> Iterator[str]:
    """An app under MokshaMiddleware with no hub, no live socket and no live-socket URL."""
    app = MokshaMiddleware(
        Starlette(routes=[Route("/", page)]), {"moksha.session.secret": "x" * 32}
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_page_and_the_log_say_what_to_start(
    browser: Browser, site_without_livesocket: str, caplog: pytest.LogCaptureFixture
) -> None:
    page_ = browser.new_page()
    console: list[str] = []
    page_.on("console", lambda message: console.append(message.text))
    with caplog.at_level(logging.WARNING, logger="moksha.web"):
        page_.goto(site_without_livesocket + "/")
        alert = page_.get_by_role("alert")
        alert.wait_for(timeout=10_000)
    assert "no live socket serves them" in alert.inner_text()
    assert "moksha.livesocket.url" in alert.inner_text()
    assert any("no live socket" in text for text in console)
    assert len(console) == 1  # that message alone: no connection attempts failing
    assert page_.evaluate("window.moksha.state") == "unavailable"
    assert NO_LIVESOCKET in caplog.text
    page_.close()


def test_the_script_stands_in_for_the_client_without_connecting(
    site_without_livesocket: str,
) -> None:
    script = httpx.get(site_without_livesocket + "/livesocket/moksha.js", timeout=10)
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "console.error(message)" in script.text
    assert "no live socket serves them" in script.text
    assert "new WebSocket" not in script.text  # it never tries to connect
