"""create_app: the dashboard, the live socket, apps and widgets of ``moksha start``, in-process."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import websockets
from web_support import client, make_config, serving

from moksha.hub import CentralMokshaHub
from moksha.livesocket import LiveSocket
from moksha.web import MokshaMiddleware, create_app
from support import TIMEOUT

PROXY = {"moksha.auth.header": "X-Remote-User", "moksha.auth.groups_header": "X-Remote-Groups"}


@contextlib.asynccontextmanager
async def site(settings: dict[str, Any] | None = None) -> AsyncIterator[MokshaMiddleware]:
    """create_app around a running hub (memory bus, no plugins) and a live socket."""
    config = make_config({"moksha.backends": "memory", **(settings or {})})
    async with CentralMokshaHub(config, [], []) as hub:
        live = LiveSocket(hub, config)
        await live.start()
        app = create_app(hub, config, live=live)
        try:
            yield app
        finally:
            await app.aclose()
            await live.aclose()


async def test_the_dashboard_its_status_and_the_live_socket_share_one_app() -> None:
    async with site() as app, client(app) as http:
        page = await http.get("/")
        status = await http.get("/_moksha/hub/status")
        live = await http.get("/livesocket/status")
        missing = await http.get("/no/such/page")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="/livesocket/moksha.js"></script>' in page.text
    assert status.json()["backends"][0]["name"] == "memory"
    assert live.json()["clients"] == 0
    assert missing.status_code == 404 and "Not found" in missing.text


async def test_installed_apps_and_widgets_are_served_too(web_plugins: Path) -> None:
    async with site() as app, client(app) as http:
        hello = await http.get("/apps/hello/")
        widget = await http.get("/widgets/greeting?name=start")
    assert "<h1>/apps/hello/</h1>" in hello.text
    assert "Hello, start!" in widget.text


async def test_the_original_websocket_endpoint_at_the_root_reaches_the_live_socket() -> None:
    async with site() as app, serving(app) as base, websockets.connect(f"{base}/") as ws:
        await ws.send(json.dumps({"topic": "__topic_subscribe__", "body": "demo.#"}))
        hub = app.hub
        assert hub is not None
        # Subscriptions are handled in order with frames: publish until one arrives.
        async with asyncio.timeout(TIMEOUT):
            while True:
                await hub.publish("demo.hello", {"n": 1})
                with contextlib.suppress(TimeoutError):
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
                    break
    assert (frame["topic"], frame["body"]) == ("demo.hello", {"n": 1})


async def test_the_dashboard_is_guarded_by_its_allow_list() -> None:
    settings = {**PROXY, "moksha.auth.allow.dashboard.main": "ops"}
    async with site(settings) as app, client(app) as http:
        anonymous = await http.get("/")
        stranger = await http.get("/_moksha/hub/status", headers={"X-Remote-User": "eve"})
        operator = await http.get("/", headers={"X-Remote-User": "olga", "X-Remote-Groups": "ops"})
    assert (anonymous.status_code, stranger.status_code, operator.status_code) == (401, 403, 200)


async def test_a_root_app_takes_the_root_and_the_dashboard_moves_aside(root_plugin: Path) -> None:
    async with site() as app, client(app) as http:
        root = await http.get("/")
        other = await http.get("/some/page")
        dashboard = await http.get("/_moksha/dashboard")
        status = await http.get("/_moksha/hub/status")
    assert (root.text, other.text) == ("root app: /", "root app: /some/page")
    assert dashboard.status_code == 200 and "/livesocket/moksha.js" in dashboard.text
    assert status.json()["hub"]["state"] == "running"
