"""tw2 inside Moksha's ASGI middleware: a request-local context per request, links served,
and a page's params checked as every widget's are."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from moksha.web import MokshaMiddleware

JQUERY = '<script src="/_moksha/tw2/xstatic.pkg.jquery/data/jquery.min.js"></script>'
STATUS_JS = '<script src="/_moksha/tw2/helloworld/static/status.js"></script>'


def starlette_app(started: asyncio.Event) -> Starlette:
    from helloworld.widgets import HelloWorldWidget, StatusWidget

    async def live(request: Request) -> HTMLResponse:
        html = HelloWorldWidget.display(id="hello")
        started.set()
        await asyncio.sleep(0)  # let the other request run while this one is open
        return HTMLResponse(f"<html><body>{html}</body></html>")

    async def quiet(request: Request) -> HTMLResponse:
        await started.wait()  # displayed while the live page's request is open
        return HTMLResponse(f"<html><body>{StatusWidget.display(id='st')}</body></html>")

    return Starlette(routes=[Route("/live", live), Route("/quiet", quiet)])


@pytest.fixture
async def client(helloworld: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = MokshaMiddleware(starlette_app(asyncio.Event()), {"moksha.debug": "false"})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
    await app.aclose()


async def test_concurrent_requests_each_get_their_own_tw2_resources(
    client: httpx.AsyncClient,
) -> None:
    live, quiet = await asyncio.gather(client.get("/live"), client.get("/quiet"))
    assert live.text.count(JQUERY) == 1 and STATUS_JS not in live.text
    assert quiet.text.count(STATUS_JS) == 1 and JQUERY not in quiet.text


async def test_linked_package_files_are_served_and_others_are_not(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/live")
    await client.get("/quiet")  # its JSLink is registered for serving as the page is made
    served = await client.get("/_moksha/tw2/helloworld/static/status.js")
    unlisted = await client.get("/_moksha/tw2/helloworld/widgets.py")
    climbing = await client.get("/_moksha/tw2/helloworld/static/../widgets.py")
    assert served.status_code == 200 and "helloworldStatusLoads" in served.text
    assert unlisted.status_code == 404
    assert climbing.status_code == 404


async def test_a_widget_page_refuses_code_or_a_bad_id_from_a_link(
    client: httpx.AsyncClient,
) -> None:
    code = await client.get("/widgets/helloworld", params={"onmessage": "alert(1)"})
    bad_id = await client.get("/widgets/helloworld", params={"id": "x');alert(1);//"})
    fine = await client.get("/widgets/status", params={"status": "busy"})
    assert code.status_code == 400 and "onmessage" in code.text
    assert bad_id.status_code == 400 and "must start with a letter" in bad_id.text
    assert "busy" in fine.text
