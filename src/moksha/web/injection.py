"""Putting the resources a page needs into its HTML, just before ``</body>``.

Two kinds of resources go in: the global ones (``moksha.global`` entry points:
links every page gets) and those of the widgets rendered while the request was
served, gathered by a per-request collector (a context variable, so it follows
the request through the app, through ``await`` and into the WSGI thread that
a2wsgi runs with a copy of the context).

Only a complete ``text/html`` response with a ``</body>`` is changed.  Left
exactly as sent: other types, HEAD requests, bodies with a
``Content-Encoding`` (gzip), Server-Sent Events, and responses that outgrow
:data:`BUFFER_LIMIT` — a streamed page is held back only up to that size, then
passed on untouched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from importlib.metadata import entry_points
from typing import Protocol

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moksha.web.resources import CSSLink, JSLink, Resource, render_resources

__all__ = [
    "BUFFER_LIMIT",
    "Collecting",
    "ResourceInjector",
    "inject",
    "load_global_resources",
]

log = logging.getLogger("moksha.web")

BUFFER_LIMIT = 2 * 1024 * 1024
"""The largest page (bytes) held back to inject into; larger ones pass untouched."""

GLOBAL_GROUP = "moksha.global"


class Collected(Protocol):
    """What a collector yields: the resources of the widgets rendered so far."""

    def resources(self) -> list[Resource]: ...


Collecting = Callable[[], AbstractContextManager[Collected]]
"""Opens a per-request collector (``ResourceCollector.collecting`` of moksha.widgets)."""


def load_global_resources() -> list[Resource]:
    """The resources of the ``moksha.global`` entry points, each once.

    An entry may name a resource, a list of them, or a callable returning either
    (called once, here).  Entries that fail to load are logged and skipped.

    Returns:
        The resources, in the order found.
    """
    found: list[Resource] = []
    for ep in entry_points(group=GLOBAL_GROUP):
        try:
            value = ep.load()
            if callable(value) and not isinstance(value, JSLink | CSSLink):
                value = value()
            items = list(value) if isinstance(value, list | tuple) else [value]
            bad = [item for item in items if not isinstance(item, JSLink | CSSLink)]
            if bad:
                raise TypeError(f"expected JSLink/CSSLink objects, got {bad[0]!r}")
        except Exception as exc:
            log.error("cannot load %s entry %r (%s): %s", GLOBAL_GROUP, ep.name, ep.value, exc)
            continue
        found.extend(items)
    return list(dict.fromkeys(found))


def inject(body: bytes, resources: Iterable[Resource], charset: str = "utf-8") -> bytes:
    """``body`` with the tags of ``resources`` before its last ``</body>``.

    Args:
        body: an HTML page.
        resources: what the page needs; duplicates and resources whose tag the
            page already has are left out.
        charset: the page's encoding.

    Returns:
        The new body, or ``body`` itself when nothing was added (no ``</body>``:
        a fragment; or every resource already there).

    Raises:
        LookupError: ``charset`` is not an encoding Python knows.
    """
    at = body.lower().rfind(b"</body>")
    if at < 0:
        return body
    missing = [r for r in dict.fromkeys(resources) if r.html().encode(charset) not in body]
    if not missing:
        return body
    tags = (render_resources(missing) + "\n").encode(charset, errors="xmlcharrefreplace")
    return body[:at] + tags + body[at:]


class ResourceInjector:
    """ASGI middleware injecting resources into the HTML pages of the app it wraps.

    Args:
        app: the wrapped ASGI app.
        resources: the global resources, on every page.
        collecting: opens a per-request collector of widget resources (None: globals only).
        limit: the largest body held back, in bytes.
    """

    def __init__(
        self,
        app: ASGIApp,
        resources: Sequence[Resource] = (),
        *,
        collecting: Collecting | None = None,
        limit: int = BUFFER_LIMIT,
    ) -> None:
        self.app = app
        self.resources = list(resources)
        self.collecting = collecting
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        opened = self.collecting() if self.collecting is not None else contextlib.nullcontext()
        with opened as collector:

            def resources() -> list[Resource]:
                widgets = collector.resources() if collector is not None else []
                return [*self.resources, *widgets]

            responder = _Responder(send, resources, self.limit, head=scope["method"] == "HEAD")
            await self.app(scope, receive, responder.send)
            await responder.close()


class _Responder:
    """Watches one response go out and decides whether to hold it back and inject."""

    def __init__(
        self, send: Send, resources: Callable[[], list[Resource]], limit: int, *, head: bool
    ) -> None:
        self._send = send
        self._resources = resources
        self._limit = limit
        self._head = head
        self._start: Message | None = None  # held back while buffering
        self._chunks: list[bytes] = []
        self._size = 0
        self._charset = "utf-8"
        self._passing = False

    async def send(self, message: Message) -> None:
        if self._passing:
            await self._send(message)
        elif message["type"] == "http.response.start":
            if self._wants(message):
                self._start = message
            else:
                self._passing = True
                await self._send(message)
        elif message["type"] == "http.response.body" and self._start is not None:
            await self._buffer(message)
        else:  # a message we do not know (trailers, pathsend): give up and pass all on
            await self._give_up(message)

    def _wants(self, start: Message) -> bool:
        headers = Headers(raw=start.get("headers", []))
        content_type = headers.get("content-type", "")
        media_type, _, params = content_type.partition(";")
        if media_type.strip().lower() != "text/html" or self._head:
            return False
        if headers.get("content-encoding", "identity").lower() != "identity":
            return False
        if start.get("status", 200) in (204, 304) or start.get("status", 200) < 200:
            return False
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self._limit):
            return False
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                self._charset = value.strip().strip('"')
        return True

    async def close(self) -> None:
        """The app returned: send on whatever it left held back (it never ended its body)."""
        if not self._passing and self._start is not None:
            await self._give_up(None)

    async def _buffer(self, message: Message) -> None:
        chunk = message.get("body", b"")
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > self._limit:
            await self._give_up(None, more_body=message.get("more_body", False))
        elif not message.get("more_body", False):
            await self._finish()

    async def _give_up(self, message: Message | None, *, more_body: bool = True) -> None:
        """Send what was held back as it came, then pass everything on."""
        self._passing = True
        if self._start is not None:
            await self._send(self._start)
            self._start = None
            body = b"".join(self._chunks)
            self._chunks = []
            if body or not more_body:
                await self._send(
                    {"type": "http.response.body", "body": body, "more_body": more_body}
                )
        if message is not None:
            await self._send(message)

    async def _finish(self) -> None:
        assert self._start is not None
        body = b"".join(self._chunks)
        try:
            new_body = inject(body, self._resources(), self._charset)
        except LookupError:  # a charset Python does not know: leave the page alone
            log.warning("cannot inject resources into a page in charset %r", self._charset)
            new_body = body
        headers = [
            (name, value)
            for name, value in self._start.get("headers", [])
            if name.lower() != b"content-length"
            and not (new_body is not body and name.lower() == b"etag")
        ]
        if new_body is not body:
            # The page changed, so the app's validator now names a similar, not an equal, body.
            etag = Headers(raw=self._start.get("headers", [])).get("etag")
            if etag:
                headers.append((b"etag", (etag if etag.startswith("W/") else f"W/{etag}").encode()))
        headers.append((b"content-length", str(len(new_body)).encode()))
        self._passing = True
        await self._send({**self._start, "headers": headers})
        await self._send({"type": "http.response.body", "body": new_body, "more_body": False})
