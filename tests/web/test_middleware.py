"""MokshaMiddleware around ASGI apps: mounting, widgets, static files, the live socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from web_support import client, make_config, serving

from moksha.errors import MokshaError
from moksha.hub import CentralMokshaHub
from moksha.livesocket import LiveSocket
from moksha.web import MemoryCache, MokshaMiddleware, web_context
from moksha.web.resources import STATIC_PREFIX
from support import TIMEOUT

SITE_JS = '<script src="/_moksha/static/site.js"></script>'
THEME_CSS = '<link rel="stylesheet" href="/theme.css">'


async def home(request: Request) -> HTMLResponse:
    return HTMLResponse(f'<html><body><a href="{request.url_for("data")}">data</a></body></html>')


async def data(request: Request) -> JSONResponse:
    return JSONResponse({"cached": await web_context(request).cache.get("answer")})


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("echo: " + await websocket.receive_text())
    await websocket.close()


def starlette_app() -> Starlette:
    return Starlette(
        routes=[Route("/", home), Route("/data", data, name="data"), WebSocketRoute("/ws", echo)]
    )


async def plain_asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] == "/page":
        await HTMLResponse("<html><body><p>plain</p></body></html>")(scope, receive, send)
    else:
        await PlainTextResponse("plain 404", status_code=404)(scope, receive, send)


# -- wrapping apps ----------------------------------------------------------


async def test_a_starlette_app_keeps_its_routes_and_its_pages_get_the_global_resources(
    web_plugins: Path,
) -> None:
    cache = MemoryCache()
    await cache.set("answer", 42)
    async with client(MokshaMiddleware(starlette_app(), make_config(), cache=cache)) as http:
        page = await http.get("/")
        json = await http.get("/data")
    # url_for still builds the wrapped app's own URLs (Moksha's routing leaves no trace).
    assert 'href="http://testserver/data"' in page.text
    assert page.text.index(THEME_CSS) < page.text.index(SITE_JS) < page.text.index("</body>")
    assert json.json() == {"cached": 42}
    assert json.headers["content-type"] == "application/json"


async def test_a_plain_asgi_callable_is_wrapped_too(web_plugins: Path) -> None:
    async with client(MokshaMiddleware(plain_asgi_app, make_config())) as http:
        page = await http.get("/page")
        missing = await http.get("/nothing")
    assert page.text == f"<html><body><p>plain</p>{THEME_CSS}\n{SITE_JS}\n</body></html>"
    assert (missing.status_code, missing.text) == (404, "plain 404")


async def test_websockets_pass_straight_through_to_the_wrapped_app() -> None:
    async with (
        serving(MokshaMiddleware(starlette_app(), make_config())) as base,
        websockets.connect(f"{base}/ws") as ws,
    ):
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "echo: hello"


async def test_web_context_is_offered_only_under_the_middleware() -> None:
    with pytest.raises(MokshaError, match="did not come through MokshaMiddleware"):
        web_context({"type": "http"})


# -- installed apps -----------------------------------------------------------


async def test_installed_apps_are_mounted_under_apps(
    web_plugins: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="moksha.web"):
        app = MokshaMiddleware(plain_asgi_app, make_config())
    assert "cannot load app 'broken'" in caplog.text
    async with client(app) as http:
        hello = await http.get("/apps/hello/")
        where = await http.get("/apps/hello/where")
        bare = await http.get("/apps/hello?x=1")
        broken = await http.get("/apps/broken/")
    assert hello.status_code == 200
    assert "<h1>/apps/hello/</h1>" in hello.text and SITE_JS in hello.text
    assert where.json() == {"root_path": "/apps/hello", "path": "/apps/hello/where"}
    assert bare.status_code == 307
    assert bare.headers["location"] == "http://testserver/apps/hello/?x=1"
    assert broken.text == "plain 404"  # not mounted: the wrapped app answers


async def test_a_wsgi_app_is_mounted_and_its_widgets_resources_are_injected(
    web_plugins: Path,
) -> None:
    async with client(MokshaMiddleware(plain_asgi_app, make_config())) as http:
        page = await http.get("/apps/legacy/some/where")
    assert "<p>/apps/legacy|/some/where</p>" in page.text
    assert '<p id="greeting-1" class="greeting">Hello, wsgi!</p>' in page.text
    # Rendered in a2wsgi's worker thread, the widget still reached this request's collector.
    assert page.text.count('<script src="/greeting.js"></script>') == 1
    assert page.text.count('<link rel="stylesheet" href="/greeting.css">') == 1


async def test_without_a_wrapped_app_the_root_app_answers(root_plugin: Path) -> None:
    async with client(MokshaMiddleware(None, make_config())) as http:
        response = await http.get("/anything")
    assert response.text == "root app: /anything"


async def test_without_a_wrapped_app_or_root_app_unknown_paths_get_a_404_page() -> None:
    async with client(MokshaMiddleware(None, make_config())) as http:
        response = await http.get("/anything")
    assert response.status_code == 404
    assert "Not found" in response.text and "</html>" in response.text


# -- widgets ------------------------------------------------------------------


async def test_a_widget_renders_on_a_page_of_its_own_with_its_params(web_plugins: Path) -> None:
    async with client(MokshaMiddleware(plain_asgi_app, make_config())) as http:
        response = await http.get("/widgets/greeting", params={"name": "you", "id": "g"})
    assert response.status_code == 200
    page = response.text
    assert page.startswith("<!doctype html>")
    assert '<p id="g" class="greeting">Hello, you!</p>' in page
    assert page.count("/greeting.js") == 1 and page.count("/greeting.css") == 1
    assert SITE_JS in page


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/widgets/nope", 404, ["No such widget", "nope"]),
        ("/widgets/greeting?colour=red", 400, ["Bad widget parameters", "colour"]),
    ],
)
async def test_widget_pages_explain_what_is_wrong(
    web_plugins: Path, path: str, status: int, words: list[str]
) -> None:
    async with client(MokshaMiddleware(plain_asgi_app, make_config())) as http:
        response = await http.get(path)
    assert response.status_code == status
    for word in words:
        assert word in response.text


# -- static files -------------------------------------------------------------


def a_static_file() -> tuple[str, bytes]:
    root = files("moksha") / "static"
    for path in sorted(Path(str(root)).rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            return path.relative_to(str(root)).as_posix(), path.read_bytes()
    pytest.fail(f"no file under {root} to serve")


async def test_static_files_are_served_with_cache_headers() -> None:
    name, content = a_static_file()
    async with client(MokshaMiddleware(plain_asgi_app, make_config())) as http:
        first = await http.get(f"{STATIC_PREFIX}/{name}")
        again = await http.get(
            f"{STATIC_PREFIX}/{name}", headers={"If-None-Match": first.headers["etag"]}
        )
        missing = await http.get(f"{STATIC_PREFIX}/no-such-file.js")
    assert first.status_code == 200
    assert first.content == content
    assert first.headers["cache-control"] == "public, max-age=3600"
    assert again.status_code == 304
    assert again.headers["cache-control"] == "public, max-age=3600"
    assert missing.status_code == 404
    assert "cache-control" not in missing.headers


# -- the live socket --------------------------------------------------------


@contextlib.asynccontextmanager
async def running_live_socket() -> AsyncIterator[LiveSocket]:
    async with CentralMokshaHub(make_config({"moksha.backends": "memory"}), [], []) as hub:
        live = LiveSocket(hub, hub.config)
        await live.start()
        try:
            yield live
        finally:
            await live.aclose()


async def test_the_live_socket_is_served_when_the_middleware_has_one() -> None:
    async with running_live_socket() as live:
        app = MokshaMiddleware(plain_asgi_app, live.hub.config, hub=live.hub, live=live)
        async with client(app) as http:
            status = await http.get("/livesocket/status")
            script = await http.get("/livesocket/moksha.js")
    assert status.json()["clients"] == 0
    assert script.headers["content-type"].startswith("text/javascript")
    assert "window" in script.text or "global" in script.text


async def test_without_a_live_socket_its_paths_belong_to_the_wrapped_app() -> None:
    async with client(MokshaMiddleware(plain_asgi_app, make_config())) as http:
        response = await http.get("/livesocket/status")
    assert response.text == "plain 404"


# -- lifespan ----------------------------------------------------------------


class CountingCache(MemoryCache):
    closed = 0

    async def aclose(self) -> None:
        self.closed += 1


async def run_lifespan(app: Any) -> list[str]:
    incoming = ["lifespan.startup", "lifespan.shutdown"]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return {"type": incoming.pop(0)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent


async def test_lifespan_reaches_the_wrapped_app() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = MokshaMiddleware(Starlette(lifespan=lifespan), make_config())
    sent = await run_lifespan(app)
    assert events == ["startup", "shutdown"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_without_a_wrapped_app_the_middleware_answers_lifespan_itself() -> None:
    given = CountingCache()
    sent = await run_lifespan(MokshaMiddleware(None, make_config(), cache=given))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert given.closed == 0  # a cache it was given belongs to the giver
