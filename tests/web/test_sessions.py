"""Sessions: a signed cookie, keyed by moksha.session.secret (or a random key per process)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from web_support import client, make_config

from moksha.web import MokshaMiddleware
from moksha.web.middleware import SESSION_COOKIE

SECRET = "a long random string nobody else knows"


async def login(request: Request) -> PlainTextResponse:
    request.session["user"] = request.query_params["user"]
    return PlainTextResponse("logged in")


async def whoami(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.session.get("user", "nobody"))


def site(secret: str | None = SECRET) -> MokshaMiddleware:
    settings: dict[str, Any] = {"moksha.session.secret": secret} if secret else {}
    app = Starlette(routes=[Route("/login", login), Route("/whoami", whoami)])
    return MokshaMiddleware(app, make_config(settings))


async def log_in(app: MokshaMiddleware, user: str) -> str:
    async with client(app) as http:
        response = await http.get("/login", params={"user": user})
    return response.cookies[SESSION_COOKIE]


async def who(app: MokshaMiddleware, cookie: str) -> str:
    async with client(app, cookies={SESSION_COOKIE: cookie}) as http:
        return (await http.get("/whoami")).text


async def test_a_session_lasts_across_requests_in_a_signed_http_only_cookie() -> None:
    app = site()
    async with client(app) as http:
        response = await http.get("/login", params={"user": "alice"})
        assert (await http.get("/whoami")).text == "alice"
    cookie_header = response.headers["set-cookie"].lower()
    assert cookie_header.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in cookie_header and "samesite=lax" in cookie_header
    assert "alice" not in response.cookies[SESSION_COOKIE]  # encoded, and signed


async def test_a_tampered_cookie_gives_an_empty_session() -> None:
    app = site()
    cookie = await log_in(app, "alice")
    payload, _, signature = cookie.partition(".")
    assert await who(app, cookie) == "alice"
    assert await who(app, f"{payload}x.{signature}") == "nobody"


async def test_with_the_same_secret_a_session_survives_a_restart() -> None:
    cookie = await log_in(site(), "alice")
    assert await who(site(), cookie) == "alice"
    assert await who(site(secret="another secret entirely"), cookie) == "nobody"


async def test_without_a_secret_a_random_key_is_used_and_a_warning_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="moksha.web"):
        first = site(secret=None)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "moksha.session.secret is not set" in warnings[0].getMessage()
    assert "will not survive a restart" in warnings[0].getMessage()
    cookie = await log_in(first, "bob")
    # One key per process: another middleware of this process accepts the cookie...
    assert await who(site(secret=None), cookie) == "bob"
    # ...and a configured key does not.
    assert await who(site(), cookie) == "nobody"
