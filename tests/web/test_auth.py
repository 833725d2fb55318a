"""Authorization: identities from a proxy header or the session; allow lists; authorizer plugins."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from web_support import client, make_config

from moksha.errors import ConfigError
from moksha.web import Identity, MokshaMiddleware

PROXY = {"moksha.auth.header": "X-Remote-User", "moksha.auth.groups_header": "X-Remote-Groups"}


async def login(request: Request) -> PlainTextResponse:
    request.session["user"] = request.query_params["user"]
    request.session["groups"] = request.query_params.getlist("group")
    return PlainTextResponse("ok")


def site(settings: dict[str, Any], **options: Any) -> MokshaMiddleware:
    app = Starlette(routes=[Route("/login", login)])
    return MokshaMiddleware(
        app, make_config({"moksha.session.secret": "s" * 32, **settings}), **options
    )


def as_user(user: str, *groups: str) -> dict[str, str]:
    return {"X-Remote-User": user, "X-Remote-Groups": ", ".join(groups)}


async def get_status(
    app: MokshaMiddleware, path: str, headers: dict[str, str] | None = None
) -> int:
    async with client(app) as http:
        return (await http.get(path, headers=headers)).status_code


async def test_a_proxy_header_names_the_user_and_the_allow_list_names_the_groups(
    web_plugins: Path,
) -> None:
    app = site({**PROXY, "moksha.auth.allow.app.hello": "admins, ops"})
    async with client(app) as http:
        admin = await http.get("/apps/hello/", headers=as_user("alice", "users", "ops"))
        user = await http.get("/apps/hello/", headers=as_user("bob", "users"))
        anonymous = await http.get("/apps/hello/")
        open_app = await http.get("/apps/legacy/", headers=as_user("bob", "users"))
    assert admin.status_code == 200
    assert (user.status_code, anonymous.status_code) == (403, 401)
    assert "You may not see the app hello" in user.text
    assert "needs you to log in" in anonymous.text
    assert open_app.status_code == 200  # no rule names it: open


async def test_the_header_is_ignored_unless_configured(web_plugins: Path) -> None:
    app = site({"moksha.auth.allow.app.hello": "admins"})
    assert await get_status(app, "/apps/hello/", as_user("mallory", "admins")) == 401


async def test_a_session_user_is_an_identity_too(web_plugins: Path) -> None:
    app = site({"moksha.auth.allow.app.hello": "admins"})
    async with client(app) as http:
        assert (await http.get("/apps/hello/")).status_code == 401
        await http.get("/login", params={"user": "carol", "group": ["users"]})
        assert (await http.get("/apps/hello/")).status_code == 403
        await http.get("/login", params={"user": "carol", "group": ["users", "admins"]})
        assert (await http.get("/apps/hello/")).status_code == 200


async def test_a_star_entry_covers_every_name_and_a_named_entry_overrides_it(
    web_plugins: Path,
) -> None:
    app = site(
        {
            **PROXY,
            "moksha.auth.allow.widget.*": "staff",
            "moksha.auth.allow.widget.greeting": "*",
        }
    )
    assert await get_status(app, "/widgets/feed?topic=x", as_user("bob", "users")) == 403
    assert await get_status(app, "/widgets/feed?topic=x", as_user("sam", "staff")) == 200
    assert await get_status(app, "/widgets/greeting") == 200


async def test_anonymous_visitors_go_to_the_login_url_when_there_is_one(
    web_plugins: Path,
) -> None:
    app = site(
        {**PROXY, "moksha.auth.allow.app.hello": "admins", "moksha.auth.login_url": "/login"}
    )
    async with client(app) as http:
        anonymous = await http.get("/apps/hello/where?x=1")
        known = await http.get("/apps/hello/where", headers=as_user("bob"))
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=/apps/hello/where%3Fx%3D1"
    assert known.status_code == 403  # logging in again would not help


async def test_an_authorizer_entry_point_is_asked_too(web_plugins: Path) -> None:
    app = site(PROXY)
    assert await get_status(app, "/apps/secret/", as_user("boss")) == 200
    assert await get_status(app, "/apps/secret/", as_user("alice", "admins")) == 403
    assert await get_status(app, "/apps/hello/", as_user("alice")) == 200


async def test_every_authorizer_must_agree_and_one_that_fails_refuses(
    web_plugins: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def may_see(self, identity: Identity, kind: str, name: str) -> bool:
            raise KeyError("no database")

    class Grumpy:
        def may_see(self, identity: Identity, kind: str, name: str) -> bool:
            return identity.user != "grumpy"

    grumpy = site(PROXY, authorizers=[Grumpy()])
    assert await get_status(grumpy, "/apps/hello/", as_user("grumpy")) == 403
    assert await get_status(grumpy, "/apps/secret/", as_user("alice")) == 200  # no entry point
    broken = site(PROXY, authorizers=[Broken()])
    with caplog.at_level(logging.ERROR, logger="moksha.web"):
        assert await get_status(broken, "/apps/hello/", as_user("alice")) == 403
    assert "failed on app hello; refused" in caplog.text


def test_an_allow_key_for_something_unknown_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"moksha\.auth\.allow\.page\.home"):
        site({"moksha.auth.allow.page.home": "admins"})
