"""Security headers on every response, and refusal of cross-site state-changing requests.

:class:`SecurityHeaders` (ASGI middleware, outermost in
:class:`~moksha.web.MokshaMiddleware`) does three things per HTTP request:

1. **CSRF**: a ``POST``/``PUT``/``PATCH``/``DELETE`` that a browser sent from
   another site is refused (403) before the app sees it, whatever cookies it
   carries.  Browsers say where a request comes from (``Sec-Fetch-Site``,
   ``Origin``); a request with neither header is not a browser's and passes
   (``moksha send``, curl).  ``moksha.web.trusted_origins`` lists other
   origins whose pages may send such requests.
2. **Headers** on every response, unless the app set its own:
   ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
   strict-origin-when-cross-origin``, ``X-Frame-Options: SAMEORIGIN`` and a
   ``Content-Security-Policy`` of ``frame-ancestors 'self'`` (so no other site
   frames the page; a wrapped app's scripts are its own business).
3. **A nonce** per request (:func:`csp_nonce`): pages Moksha itself writes
   (the dashboard, ``/widgets/<name>``) send :func:`page_policy`, which allows
   scripts from this site and inline scripts carrying that nonce only — the
   few a live widget's ``onmessage`` needs, written by Moksha, never
   ``'unsafe-inline'``.
"""

from __future__ import annotations

import contextvars
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moksha.config import Config
from moksha.web.errors import error_page

__all__ = ["SecurityHeaders", "csp_nonce", "page_headers", "page_policy", "socket_origins"]

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

DEFAULT_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"content-security-policy", b"frame-ancestors 'self'"),
)

_nonce: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "moksha_csp_nonce", default=None
)


def csp_nonce() -> str | None:
    """The nonce of the request being served, for ``<script nonce=...>``; None outside one."""
    return _nonce.get()


def page_policy(nonce: str | None = None, connect: Iterable[str] = ()) -> str:
    """The Content-Security-Policy of a page Moksha writes.

    Args:
        nonce: the request's nonce (:func:`csp_nonce`): inline scripts with it may run.
        connect: origins besides this site's own that scripts may connect to
            (a live socket served on another port).

    Returns:
        The header's value: no inline script without the nonce, no plug-ins,
        no framing by other sites, forms and ``<base>`` kept to this site.
    """
    scripts = "'self'" + (f" 'nonce-{nonce}'" if nonce else "")
    connections = " ".join(["'self'", *dict.fromkeys(connect)])
    return (
        f"default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:; connect-src {connections}; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
    )


def socket_origins(base_url: str) -> list[str]:
    """The origins a live socket at ``base_url`` is reached on: its http(s) and ws(s) forms."""
    parts = urlsplit(base_url)
    if not parts.netloc:
        return []
    secure = parts.scheme in ("https", "wss")
    http, ws = ("https", "wss") if secure else ("http", "ws")
    return [f"{http}://{parts.netloc}", f"{ws}://{parts.netloc}"]


def page_headers(request: Request, config: Config) -> dict[str, str]:
    """The headers of a page Moksha writes: :func:`page_policy` for this request.

    Its scripts may connect to this site (WebSocket included) and to the live
    socket the configuration places elsewhere (``moksha.livesocket.url``, or
    the hub's own port with ``moksha.livesocket.backend = websocket``).
    """
    connect = socket_origins(str(request.base_url))
    if config.livesocket_url:
        connect += socket_origins(config.livesocket_url)
    elif config.livesocket_backend == "websocket":
        hub_port = request.url.replace(port=config.livesocket_websocket_port, path="", query="")
        connect += socket_origins(str(hub_port))
    return {"Content-Security-Policy": page_policy(csp_nonce(), connect)}


class SecurityHeaders:
    """ASGI middleware: cross-site unsafe requests refused, security headers added.

    Args:
        app: the wrapped ASGI app.
        trusted_origins: other origins (``https://host:port``) whose pages may
            send state-changing requests.
    """

    def __init__(self, app: ASGIApp, trusted_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.trusted = frozenset(origin.rstrip("/").lower() for origin in trusted_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _nonce.set(secrets.token_urlsafe(16))
        try:
            reason = self._cross_site(scope)
            if reason is not None:
                page = error_page(403, "Refused: a request from another site", reason)
                await page(scope, receive, self._with_headers(send))
                return
            await self.app(scope, receive, self._with_headers(send))
        finally:
            _nonce.reset(token)

    def _cross_site(self, scope: Scope) -> str | None:
        """Why this request must be refused as cross-site, or None."""
        if scope["method"] not in UNSAFE_METHODS:
            return None
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is not None and origin.rstrip("/").lower() in self.trusted:
            return None
        site = headers.get("sec-fetch-site")
        if site is not None:  # a browser says where the request comes from
            if site in ("same-origin", "none"):
                return None
        elif origin is None:
            return None  # not a browser's request (or a browser too old to say)
        elif urlsplit(origin).netloc.lower() == headers.get("host", "").lower():
            return None
        return (
            f"A page of {origin or 'another site'} may not send a {scope['method']} here. "
            "If that site is yours, list it in moksha.web.trusted_origins."
        )

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                present = {name.lower() for name, _ in raw}
                raw += [(name, value) for name, value in DEFAULT_HEADERS if name not in present]
                message = {**message, "headers": raw}
            await send(message)

        return sending
