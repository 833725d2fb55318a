"""Putting the resources a page needs into its HTML, just before ``</body>``.

Two kinds of resources go in: the global ones (``moksha.global`` entry points:
links every page gets) and those of the widgets rendered while the request was
served, gathered by a per-request collector (a context variable, so it follows
the request through the app, through ``await`` and into the WSGI thread that
a2wsgi runs with a copy of the context).

Only a ``text/html`` response with a ``</body>`` is changed.  A page of
known size (sent whole, or with a Content-Length, as WSGI apps send theirs)
gets the tags and a corrected Content-Length; a page streamed without a
length is never held back: the tags go in as its ``</body>`` passes (chunks
before it reach the client as they are sent).  Left exactly as sent: other
types, HEAD requests, bodies with a ``Content-Encoding`` (gzip), Server-Sent
Events, and pages larger than :data:`BUFFER_LIMIT` bytes before their
``</body>``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moksha.plugins import installed
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
"""Pages larger than this (bytes) before their ``</body>`` pass untouched."""

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
    for ep in installed(GLOBAL_GROUP):
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
    tags = _tags_missing_from(body, resources, charset)
    return body[:at] + tags + body[at:] if tags else body


def _tags_missing_from(page: bytes, resources: Iterable[Resource], charset: str) -> bytes:
    """The tags of ``resources`` that ``page`` does not have yet, encoded; b"" for none."""
    missing = [r for r in dict.fromkeys(resources) if r.html().encode(charset) not in page]
    if not missing:
        return b""
    return (render_resources(missing) + "\n").encode(charset, errors="xmlcharrefreplace")


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


_CLOSING = b"</body>"


class _Responder:
    """Watches one response go out and injects before its ``</body>``.

    A page of known size (one body message, or a Content-Length, at most
    :attr:`limit`) is changed whole and its Content-Length corrected.  A page
    streamed without a length is never held back: each chunk goes on as it
    comes, but for the few bytes at its end that may begin a ``</body>`` split
    across chunks; the tags go in when ``</body>`` passes.  One that passes
    :attr:`limit` bytes before its ``</body>`` goes on untouched.
    """

    def __init__(
        self, send: Send, resources: Callable[[], list[Resource]], limit: int, *, head: bool
    ) -> None:
        self._send = send
        self._resources = resources
        self._limit = limit
        self._head = head
        self._start: Message | None = None  # held back until the first body message
        self._streaming = False
        self._sized: Message | None = None  # the start of a page of known length, held back
        self._chunks: list[bytes] = []
        self._seen = bytearray()  # the streamed page so far: tags it has need not go in again
        self._tail = b""  # the end of the last chunk, which may begin a "</body>"
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
            if message.get("more_body", False):
                await self._begin_stream(message)
            else:
                await self._finish(message.get("body", b""))
        elif message["type"] == "http.response.body" and self._streaming:
            await self._stream(message.get("body", b""), more_body=message.get("more_body", False))
        elif message["type"] == "http.response.body" and self._sized is not None:
            await self._collect(message)
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
        if not self._passing:
            await self._give_up(None)

    async def _give_up(self, message: Message | None) -> None:
        """Send on what is held back (the start, body parts), then pass everything as it comes."""
        self._passing = True
        start, self._start = self._start or self._sized, None
        self._sized = None
        held, self._chunks, self._tail = b"".join(self._chunks) + self._tail, [], b""
        if start is not None:
            await self._send(start)
        if held:
            await self._send({"type": "http.response.body", "body": held, "more_body": True})
        if message is not None:
            await self._send(message)

    async def _begin_stream(self, first: Message) -> None:
        """The page comes in several messages: inject as it passes, or leave it alone."""
        assert self._start is not None
        start = self._start
        self._start = None
        if Headers(raw=start.get("headers", [])).get("content-length") is not None:
            # A page of known length (at most the limit) sent in parts, as WSGI apps send
            # theirs: gathered, so its Content-Length can be corrected.
            self._sized = start
            await self._collect(first)
            return
        self._streaming = True
        await self._send({**start, "headers": _weak_etag(start.get("headers", []))})
        await self._stream(first.get("body", b""), more_body=True)

    async def _stream(self, body: bytes, *, more_body: bool) -> None:
        chunk = self._tail + body
        self._tail = b""
        if len(self._seen) + len(body) > self._limit:
            self._passing = True  # past the limit before its end: left as it is
            await self._send({"type": "http.response.body", "body": chunk, "more_body": more_body})
            return
        self._seen += body
        at = chunk.lower().find(_CLOSING)
        if at >= 0:
            self._passing = True
            tags = self._tags(bytes(self._seen))
            chunk = chunk[:at] + tags + chunk[at:]
        elif more_body:
            keep = _partial_closing(chunk)
            chunk, self._tail = chunk[: len(chunk) - keep], chunk[len(chunk) - keep :]
        if chunk or not more_body:
            await self._send({"type": "http.response.body", "body": chunk, "more_body": more_body})

    async def _collect(self, message: Message) -> None:
        self._chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            self._start, self._sized = self._sized, None
            body, self._chunks = b"".join(self._chunks), []
            await self._finish(body)

    def _tags(self, page: bytes) -> bytes:
        """The tags of the resources ``page`` lacks, in its charset (none if unknown)."""
        try:
            return _tags_missing_from(page, self._resources(), self._charset)
        except LookupError:  # a charset Python does not know: leave the page alone
            log.warning("cannot inject resources into a page in charset %r", self._charset)
            return b""

    async def _finish(self, body: bytes) -> None:
        """The whole page came in one message: inject and correct its length."""
        assert self._start is not None
        try:
            new_body = inject(body, self._resources(), self._charset)
        except LookupError:  # a charset Python does not know: leave the page alone
            log.warning("cannot inject resources into a page in charset %r", self._charset)
            new_body = body
        raw = self._start.get("headers", [])
        headers = [(name, value) for name, value in raw if name.lower() != b"content-length"]
        if new_body is not body:
            # The page changed, so the app's validator now names a similar, not an equal, body.
            headers = _weak_etag(headers)
        headers.append((b"content-length", str(len(new_body)).encode()))
        self._passing = True
        await self._send({**self._start, "headers": headers})
        await self._send({"type": "http.response.body", "body": new_body, "more_body": False})


def _weak_etag(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with a strong ETag made weak (the body is similar, no longer equal)."""
    out = []
    for name, value in headers:
        if name.lower() == b"etag" and not value.startswith(b"W/"):
            value = b"W/" + value
        out.append((name, value))
    return out


def _partial_closing(chunk: bytes) -> int:
    """How many bytes at the end of ``chunk`` could begin a ``</body>`` (0 to 6)."""
    end = chunk[-(len(_CLOSING) - 1) :].lower()
    for size in range(len(end), 0, -1):
        if _CLOSING.startswith(end[-size:]):
            return size
    return 0
