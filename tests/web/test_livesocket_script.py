"""``/livesocket/moksha.js`` under the middleware points pages at a live socket that exists."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.applications import Starlette
from web_support import client, make_config

from moksha.hub import CentralMokshaHub
from moksha.web import MokshaMiddleware

HUB_ON_ANY_PORT = {
    "moksha.livesocket.backend": "websocket",
    "moksha.livesocket.websocket.port": 0,
    "moksha.session.secret": "x" * 32,
}


async def test_pages_connect_to_the_port_the_hub_really_listens_on() -> None:
    async with CentralMokshaHub(make_config(HUB_ON_ANY_PORT), [], []) as hub:
        assert hub.livesocket_url is not None
        port = urlsplit(hub.livesocket_url).port
        app = MokshaMiddleware(Starlette(), hub=hub)
        async with client(app) as http:
            script = (await http.get("/livesocket/moksha.js")).text
        await app.aclose()
    assert f'moksha.connect({{url: "http://testserver:{port}"}});' in script


async def test_any_free_port_without_a_started_hub_says_what_is_missing() -> None:
    app = MokshaMiddleware(Starlette(), make_config(HUB_ON_ANY_PORT))
    async with client(app) as http:
        script = (await http.get("/livesocket/moksha.js")).text
    await app.aclose()
    assert "moksha.connect({url:" not in script
    assert "no live socket serves them" in script
