"""Error pages, and the middleware that turns an exception into one.

In production (``moksha.debug`` off) a failing request gets a clean page with
an error id, and the log gets the traceback with the same id, so whoever reads
the page can find the record.  With ``moksha.debug = true`` the page shows the
traceback (Starlette's debug page).  Each error is logged once, here: the
exception is not raised further, so the server does not log it again.

An exception raised after the response started cannot become a page (the
status line is out).  When the response was complete (a mounted Starlette app
sends its own error page, then raises for the server), it is logged here and
goes no further; when it was cut short, it is raised on, and the server logs
it and drops the connection, which tells the client the response is incomplete.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from html import escape

from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ErrorMiddleware", "error_page", "not_found"]

log = logging.getLogger("moksha.web")

ERROR_PAGE_POLICY = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{status} {title}</title>
<style>
  :root {{ color-scheme: light dark; --text: #1f2933; --muted: #52606d; --bg: #f5f7fa;
           --card: #fff; --code: #eef2f7; }}
  @media (prefers-color-scheme: dark) {{
    :root {{ --text: #e4e8ee; --muted: #98a2b3; --bg: #0f1319; --card: #181d25;
             --code: #11151b; }}
  }}
  body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; padding: 0 1rem;
          color: var(--text); background: var(--bg); }}
  main {{ max-width: 36rem; margin: 12vh auto; padding: 2rem; background: var(--card);
          border-radius: 8px; box-shadow: 0 1px 3px rgba(0, 0, 0, .12); }}
  h1 {{ font-size: 1.4rem; margin: 0 0 .5rem; }}
  .status {{ color: var(--muted); font-size: .9rem; letter-spacing: .05em; }}
  code {{ background: var(--code); padding: .1em .3em; border-radius: 3px; }}
</style>
</head>
<body>
<main>
<div class="status">{status}</div>
<h1>{title}</h1>
<p>{detail}</p>
</main>
</body>
</html>
"""


def error_page(
    status: int, title: str, detail: str = "", *, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    """A clean, self-contained HTML page for an error status.

    Args:
        status: the HTTP status code.
        title: one line saying what happened.
        detail: a sentence saying what the visitor can do (plain text, escaped here).
        headers: extra response headers.

    Returns:
        The response.
    """
    html = _PAGE.format(status=status, title=escape(title), detail=escape(detail))
    # Moksha's own page: no inline script (its style is inline, its scripts only injected links).
    policy = {"Content-Security-Policy": ERROR_PAGE_POLICY}
    return HTMLResponse(html, status_code=status, headers={**policy, **(headers or {})})


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI app answering 404 (a page) to requests and closing WebSockets."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1000})
        return
    await error_page(404, "Not found", "Nothing is served at this address.")(scope, receive, send)


class ErrorMiddleware:
    """Turns exceptions of the app it wraps into error pages; logs each once.

    Args:
        app: the ASGI app to guard.
        debug: show the traceback on the page (development only).
    """

    def __init__(self, app: ASGIApp, *, debug: bool = False) -> None:
        self.app = app
        self.debug = debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = completed = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, completed
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                completed = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if completed:
                # An app that answered its own error page (a mounted Starlette app does, then
                # raises for the server to log): the visitor has a page; log it here, once.
                self._log(Request(scope), exc)
                return
            if started:
                raise
            response = self._response(Request(scope), exc)
            await response(scope, receive, send)

    def _response(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            # Raised on purpose (a 404, a 405): a page, but not an error to log.
            return error_page(exc.status_code, str(exc.detail), headers=exc.headers)
        error_id = self._log(request, exc)
        if self.debug:
            return ServerErrorMiddleware(self.app, debug=True).debug_response(request, exc)
        if "text/html" in request.headers.get("accept", ""):
            return error_page(
                500,
                "Something went wrong",
                f"The error was logged with the id {error_id}; please try again later.",
            )
        return PlainTextResponse(f"Internal Server Error (error id {error_id})", status_code=500)

    @staticmethod
    def _log(request: Request, exc: Exception) -> str:
        error_id = secrets.token_hex(6)
        log.error(
            "%s %s failed (error id %s)",
            request.method,
            request.url.path,
            error_id,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        return error_id
