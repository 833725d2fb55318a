"""Security headers on every response, and cross-site state-changing requests refused."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route
from web_support import client, make_config

from moksha.web import MokshaMiddleware
from moksha.web.security import page_policy

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-frame-options": "SAMEORIGIN",
}


async def change(request: Request) -> PlainTextResponse:
    request.session["changed"] = True
    return PlainTextResponse("changed")


async def home(request: Request) -> HTMLResponse:
    return HTMLResponse("<html><body><p>home</p></body></html>")


async def own_policy(request: Request) -> HTMLResponse:
    return HTMLResponse("<p>mine</p>", headers={"Content-Security-Policy": "default-src 'none'"})


APP = Starlette(
    routes=[
        Route("/", home),
        Route("/change", change, methods=["POST", "PUT", "PATCH", "DELETE"]),
        Route("/own", own_policy),
        Route("/data", lambda request: JSONResponse({"a": 1})),
    ]
)


def site(**settings: Any) -> MokshaMiddleware:
    return MokshaMiddleware(APP, make_config({"moksha.session.secret": "s" * 32, **settings}))


@pytest.mark.parametrize(
    "path",
    ["/", "/data", "/nowhere", "/_moksha/static/widgets/moksha-widgets.js", "/widgets/chart"],
)
async def test_every_response_has_the_security_headers(path: str) -> None:
    async with client(site()) as http:
        response = await http.get(path)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert "frame-ancestors 'self'" in response.headers["content-security-policy"]


async def test_a_wrapped_apps_own_policy_is_kept() -> None:
    async with client(site()) as http:
        response = await http.get("/own")
    assert response.headers["content-security-policy"] == "default-src 'none'"


async def test_a_widget_page_moksha_writes_allows_no_inline_script_without_its_nonce() -> None:
    async with client(site()) as http:
        first = await http.get("/widgets/live", params={"topic": "a.b"})
        second = await http.get("/widgets/live", params={"topic": "a.b"})
    policy = first.headers["content-security-policy"]
    script_src = next(p for p in policy.split("; ") if p.startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    nonce = script_src.split("'nonce-")[1].rstrip("'")
    # The page's one inline script carries this response's nonce; the next response has another.
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", first.text)
    assert inline == [f'<script nonce="{nonce}">']
    assert nonce not in second.text
    assert "frame-ancestors 'self'" in policy and "object-src 'none'" in policy


def test_the_page_policy_lets_scripts_reach_a_live_socket_elsewhere() -> None:
    policy = page_policy("n0nce", ["http://hub:9998", "ws://hub:9998"])
    assert "connect-src 'self' http://hub:9998 ws://hub:9998;" in policy
    assert "script-src 'self' 'nonce-n0nce';" in policy


# -- cross-site requests ---------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://sub.testserver"},
        {"Origin": "https://evil.example"},  # an older browser: Origin alone
        {"Origin": "null"},  # a sandboxed frame, a data: page
    ],
    ids=["cross-site", "same-site", "origin-only", "null-origin"],
)
async def test_a_state_changing_request_from_another_site_is_refused_with_its_cookies(
    method: str, headers: dict[str, str]
) -> None:
    async with client(site()) as http:
        await http.get("/")  # a visit: the browser now holds the session cookie
        http.cookies.set("moksha_session", "a-session", domain="testserver")
        response = await http.request(method, "/change", headers=headers)
    assert response.status_code == 403
    assert "may not send a" in response.text and "moksha.web.trusted_origins" in response.text
    assert "set-cookie" not in response.headers  # the app never ran
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"},
        {"Sec-Fetch-Site": "none"},  # typed in the address bar, a bookmark
        {"Origin": "http://testserver"},
        {},  # not a browser: moksha send, curl
    ],
    ids=["same-origin", "user-initiated", "same-origin-origin-only", "no-browser"],
)
async def test_same_site_and_non_browser_requests_pass(headers: dict[str, str]) -> None:
    async with client(site()) as http:
        response = await http.post("/change", headers=headers)
    assert response.status_code == 200
    assert response.text == "changed"


async def test_a_trusted_origin_may_send_state_changing_requests() -> None:
    app = site(**{"moksha.web.trusted_origins": "https://admin.example.org"})
    headers = {"Sec-Fetch-Site": "cross-site", "Origin": "https://admin.example.org"}
    async with client(app) as http:
        response = await http.post("/change", headers=headers)
    assert response.status_code == 200


async def test_reads_from_another_site_are_not_refused() -> None:
    headers = {"Sec-Fetch-Site": "cross-site"}  # a link followed from another site
    async with client(site()) as http:
        response = await http.get("/", headers=headers)
    assert response.status_code == 200


async def test_the_live_socket_publish_endpoint_refuses_another_site(
    tmp_path: Any,
) -> None:
    from moksha.hub import CentralMokshaHub
    from moksha.livesocket import LiveSocket

    config = make_config({"moksha.backends": "memory", "moksha.session.secret": "s" * 32})
    async with CentralMokshaHub(config) as hub:
        live = LiveSocket(hub, config)
        await live.start()
        try:
            app = MokshaMiddleware(None, config, hub=hub, live=live)
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
                refused = await http.post(
                    "/livesocket/publish",
                    json={"topic": "a.b", "body": 1},
                    headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
                )
                sent = await http.post("/livesocket/publish", json={"topic": "a.b", "body": 1})
        finally:
            await live.aclose()
    assert refused.status_code == 403
    assert sent.status_code == 200


# -- params a link may not give ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "said"),
    [
        ("/widgets/live", {"topic": "a.b", "onmessage": "alert(document.cookie)"}, "'onmessage'"),
        ("/widgets/hub_status", {"src": "https://evil.example/status"}, "'src' must be a path"),
        ("/widgets/hub_status", {"src": "//evil.example/status"}, "'src' must be a path"),
    ],
)
async def test_a_link_cannot_give_code_or_a_foreign_address_to_a_widget_page(
    path: str, params: dict[str, str], said: str
) -> None:
    async with client(site()) as http:
        response = await http.get(path, params=params)
    assert response.status_code == 403
    assert said in html.unescape(response.text)
    assert "alert(" not in response.text and "evil.example/status" not in response.text


async def test_a_widget_page_has_a_human_title() -> None:
    async with client(site()) as http:
        inspector = await http.get("/widgets/inspector")
        hub = await http.get("/widgets/hub_status", params={"src": "/_moksha/hub/status"})
    assert "<title>Topic inspector</title>" in inspector.text
    assert "<h1>Topic inspector</h1>" in inspector.text
    assert "<title>Hub status</title>" in hub.text
