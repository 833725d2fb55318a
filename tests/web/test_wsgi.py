"""MokshaWSGIMiddleware: Moksha around WSGI apps (a plain callable, Flask), served as WSGI."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask
import httpx
import pytest
from web_support import make_config

from moksha.web import MemoryCache, MokshaWSGIMiddleware, web_context
from moksha.web.resources import CSSLink, JSLink
from moksha.widgets import Widget

SITE_JS = '<script src="/_moksha/static/site.js"></script>'


class Badge(Widget):
    template = '<span id="{{ id }}" class="badge">{{ text }}</span>'
    params = {"text": "new"}
    resources = [CSSLink("/badge.css"), JSLink("/badge.js")]


def plain_wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    if environ["PATH_INFO"] == "/data":
        body = json.dumps({"html": "<body></body>"}).encode()
        content_type = "application/json"
    else:
        body = f"<html><body>{Badge().render()}{Badge().render()}</body></html>".encode()
        content_type = "text/html; charset=utf-8"
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def wrapped(web_plugins: Path) -> Iterator[Callable[..., httpx.Client]]:
    """Wraps a WSGI app in the middleware; yields an httpx client calling it as WSGI."""
    made: list[MokshaWSGIMiddleware] = []

    def wrap(app: Any, **options: Any) -> httpx.Client:
        made.append(MokshaWSGIMiddleware(app, make_config(), **options))
        transport = httpx.WSGITransport(app=made[-1])
        return httpx.Client(transport=transport, base_url="http://testserver")

    yield wrap
    for middleware in made:
        middleware.close()


def test_a_plain_wsgi_app_gets_its_widgets_resources_once_and_the_global_ones(
    wrapped: Callable[..., httpx.Client],
) -> None:
    with wrapped(plain_wsgi_app) as http:
        page = http.get("/")
        data = http.get("/data")
    assert page.status_code == 200
    text = page.text
    assert '<span id="badge-1" class="badge">new</span>' in text
    assert '<span id="badge-2" class="badge">new</span>' in text
    assert text.count('<script src="/badge.js"></script>') == 1
    assert text.count('<link rel="stylesheet" href="/badge.css">') == 1
    assert SITE_JS in text and text.index(SITE_JS) < text.index("</body>")
    assert page.headers["content-length"] == str(len(page.content))
    assert data.json() == {"html": "<body></body>"}


def test_moksha_paths_answer_before_the_wsgi_app(wrapped: Callable[..., httpx.Client]) -> None:
    with wrapped(plain_wsgi_app) as http:
        widget = http.get("/widgets/greeting", params={"name": "flask"})
        mounted = http.get("/apps/hello/")
    assert "Hello, flask!" in widget.text
    assert "<h1>/apps/hello/</h1>" in mounted.text


def flask_app() -> flask.Flask:
    app = flask.Flask("moksha_wsgi_test")

    @app.route("/")
    def index() -> str:
        return flask.render_template_string(
            "<!doctype html><html><body><h1>Flask</h1>{{ badge }}</body></html>",
            badge=Badge().render(text="from flask"),
        )

    @app.route("/login/<user>")
    def login(user: str) -> str:
        flask.session["user"] = user
        return "ok"

    @app.route("/who")
    def who() -> str:
        return flask.session.get("user", "nobody")

    app.secret_key = "flask's own secret"
    return app


def test_a_flask_app_keeps_working_and_its_pages_get_the_resources(
    wrapped: Callable[..., httpx.Client],
) -> None:
    app = flask_app()
    app.wsgi_app = MokshaWSGIMiddleware(app.wsgi_app, make_config())  # type: ignore[method-assign]
    try:
        with httpx.Client(
            transport=httpx.WSGITransport(app=app), base_url="http://testserver"
        ) as http:
            page = http.get("/")
            http.get("/login/alice")
            who = http.get("/who")
    finally:
        app.wsgi_app.close()
    assert '<span id="badge-1" class="badge">from flask</span>' in page.text
    assert page.text.count("/badge.js") == 1
    assert SITE_JS in page.text
    assert who.text == "alice"  # Flask's own session is untouched by Moksha's


def web_threads() -> int:
    return sum(thread.name == "moksha-web" for thread in threading.enumerate())


def test_close_stops_the_event_loop_thread(web_plugins: Path) -> None:
    before = web_threads()
    middleware = MokshaWSGIMiddleware(plain_wsgi_app, make_config())
    with httpx.Client(transport=httpx.WSGITransport(app=middleware)) as http:
        assert http.get("http://testserver/").status_code == 200
    assert web_threads() == before + 1
    middleware.close()
    middleware.close()  # twice is harmless
    assert web_threads() == before


def test_the_web_context_reaches_the_wsgi_app_through_the_environ(
    wrapped: Callable[..., httpx.Client],
) -> None:
    seen: list[Any] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(web_context(environ["asgi.scope"]).cache)
        start_response("204 No Content", [])
        return []

    with wrapped(app) as http:
        assert http.get("/").status_code == 204
    assert len(seen) == 1 and isinstance(seen[0], MemoryCache)


@pytest.mark.parametrize(
    ("settings", "url"),
    [
        (
            {"moksha.livesocket.backend": "websocket", "moksha.livesocket.websocket.port": 9998},
            "http://testserver:9998",
        ),
        (
            {"moksha.livesocket.url": "https://hub.example.org/live/"},
            "https://hub.example.org/live",
        ),
    ],
    ids=["hub-port", "configured-url"],
)
def test_without_websockets_the_js_client_connects_to_the_hubs_own_live_socket(
    settings: dict[str, Any], url: str
) -> None:
    # WSGI cannot serve the live socket; a hub serves it on its own port, and the
    # client the page links on its own origin is told to connect there.
    middleware = MokshaWSGIMiddleware(plain_wsgi_app, make_config(settings))
    try:
        with httpx.Client(transport=httpx.WSGITransport(app=middleware)) as http:
            script = http.get("http://testserver/livesocket/moksha.js")
    finally:
        middleware.close()
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.text.rstrip().endswith(f'moksha.connect({{url: "{url}"}});')
    assert "window" in script.text or "global" in script.text
