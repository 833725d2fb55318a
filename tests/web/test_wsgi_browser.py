"""In Chromium: a Flask page wrapped by MokshaWSGIMiddleware, its live widget fed by a hub.

WSGI cannot serve WebSockets, so the hub serves the live socket on its own
port; the page links the JS client on its own origin and the middleware tells
the client where the live socket is.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import flask

from moksha.hub import CentralMokshaHub
from moksha.web import MokshaWSGIMiddleware
from moksha.widgets import LiveWidget
from support import TIMEOUT, free_endpoint

PAGE_TIMEOUT_MS = 5000
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"  # git-ignored


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a line per request would drown pytest's report


def flask_site(settings: dict[str, Any]) -> flask.Flask:
    app = flask.Flask("moksha_flask_example")

    @app.route("/")
    def index() -> str:
        widget = LiveWidget(topic="orders.#", onmessage="this.textContent = 'order ' + json.n;")
        return f"<!doctype html><html><body><h1>Orders</h1>{widget.render(id='last')}</body></html>"

    app.wsgi_app = MokshaWSGIMiddleware(app.wsgi_app, settings)  # type: ignore[method-assign]
    return app


def test_a_live_widget_on_a_flask_page_shows_what_the_hub_publishes(browser: Any) -> None:
    settings = {
        "moksha.backends": "memory",
        "moksha.livesocket.backend": "websocket",
        "moksha.livesocket.websocket.port": int(free_endpoint().rpartition(":")[2]),
        "moksha.session.secret": "s" * 32,
    }
    # Playwright's sync API marks this thread's loop as running: made elsewhere, the hub
    # starts its own loop thread, as in any plain program.
    with ThreadPoolExecutor(1) as pool:
        hub = pool.submit(CentralMokshaHub, settings, [], []).result()
    app = flask_site(settings)
    server = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="flask", daemon=True)
    thread.start()
    try:
        page = browser.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.goto(f"http://127.0.0.1:{server.server_port}/")
        assert hub.livesocket is not None
        deadline = time.monotonic() + TIMEOUT
        while hub.livesocket.stats()["subscriptions"] < 1:
            assert time.monotonic() < deadline, "the page never subscribed"
            time.sleep(0.02)
        hub.send_message("orders.new", {"n": 17})
        page.wait_for_function("document.getElementById('last').textContent === 'order 17'")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "web-flask-live-widget.png"))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)
        app.wsgi_app.close()  # type: ignore[attr-defined]
        hub.close()
