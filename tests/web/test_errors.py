"""Errors: a clean 500 page in production, the traceback only in debug, each logged once."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send
from web_support import client, make_config

from moksha.web import MokshaMiddleware

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


async def failing_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] == "/forbidden":
        raise HTTPException(403, "members only")
    if scope["path"] == "/half":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise ValueError("secret detail of the failure")


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.parametrize("path", ["/apps/legacy/boom", "/anything"], ids=["mounted", "wrapped"])
async def test_production_shows_a_clean_page_and_logs_the_traceback_once(
    web_plugins: Path, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    app = MokshaMiddleware(failing_app, make_config())
    caplog.clear()  # the plugin's broken app was logged while mounting
    async with client(app) as http:
        response = await http.get(path, headers=HTML)
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in response.text
    for leak in ("Traceback", "Error", "failed", "secret detail", ".py"):
        assert leak not in response.text
    [record] = errors_logged(caplog)
    assert record.exc_info is not None
    error_id = re.search(r"error id ([0-9a-f]+)", record.getMessage())
    assert error_id is not None and error_id.group(1) in response.text


async def test_debug_shows_the_traceback_and_still_logs_once(
    web_plugins: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = MokshaMiddleware(failing_app, make_config({"moksha.debug": "true"}))
    caplog.clear()
    async with client(app) as http:
        mounted = await http.get("/apps/legacy/boom", headers=HTML)
    assert mounted.status_code == 500
    assert "Traceback" in mounted.text
    assert "RuntimeError" in mounted.text and "the WSGI app failed" in mounted.text
    assert len(errors_logged(caplog)) == 1


async def test_clients_that_do_not_want_html_get_one_line_of_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with client(MokshaMiddleware(failing_app, make_config())) as http:
        response = await http.get("/api", headers={"Accept": "application/json"})
    assert response.status_code == 500
    assert re.fullmatch(r"Internal Server Error \(error id [0-9a-f]+\)", response.text)
    assert len(errors_logged(caplog)) == 1


async def test_a_mounted_starlette_app_answers_its_own_error_which_is_logged_once(
    web_plugins: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = MokshaMiddleware(failing_app, make_config())
    caplog.clear()
    async with client(app) as http:
        response = await http.get("/apps/hello/boom", headers=HTML)
    assert response.status_code == 500
    assert "the app failed" not in response.text
    [record] = errors_logged(caplog)
    assert record.exc_info is not None and "the app failed" in str(record.exc_info[1])


async def test_an_http_exception_becomes_a_page_with_its_status_and_no_error_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with client(MokshaMiddleware(failing_app, make_config())) as http:
        response = await http.get("/forbidden", headers=HTML)
    assert response.status_code == 403
    assert "members only" in response.text
    assert errors_logged(caplog) == []


async def test_an_error_after_the_response_started_is_left_to_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The status line is out: no page can replace it.  The server must see the
    # exception to cut the connection (so the client knows the body is incomplete),
    # and it logs it; logging here too would log it twice.
    async with client(MokshaMiddleware(failing_app, make_config())) as http:
        with pytest.raises(ValueError, match="secret detail"):
            await http.get("/half")
    assert errors_logged(caplog) == []
