"""A feed server on 127.0.0.1 for the feed tests, and a way to write RSS documents.

:class:`FeedServer` serves the fixture files of ``tests/data/feeds`` (with an
``ETag`` and a ``Last-Modified``, answering ``304`` when they match), documents
a test puts in it (:meth:`FeedServer.put`; a feed that gains an entry), and
special paths: ``/slow`` (answers after ``slow_seconds``), ``/huge`` (streams
without end until the client hangs up), ``/huge-declared`` (a
``Content-Length`` over any limit), ``/redirect`` (to ``/rss20.xml``),
``/redirect-loop`` and ``/status/<code>``.  It counts requests per path, so a
test can wait for the next poll instead of sleeping.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "feeds"
TIMEOUT = 5.0
# Fixture files' Last-Modified: a fixed time, so If-Modified-Since matches it exactly.
LAST_MODIFIED = formatdate(1_700_000_000, usegmt=True)
CONTENT_TYPES = {".xml": "application/xml", ".rdf": "application/rdf+xml", ".html": "text/html"}


@dataclass
class Document:
    """A document the server holds: bytes, type, and whether it sends validators."""

    body: bytes
    content_type: str = "application/rss+xml"
    validators: bool = True

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


class FeedServer:
    """A threaded HTTP server on 127.0.0.1, on a free port, for one test."""

    def __init__(self) -> None:
        self.documents: dict[str, Document] = {}
        for path in DATA.iterdir():
            if not path.is_file():
                continue  # the plugin package
            kind = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
            self.documents[f"/{path.name}"] = Document(path.read_bytes(), kind)
        self.slow_seconds = 10.0
        self.huge_sent = 0
        self.hits: Counter[str] = Counter()
        self.statuses: list[tuple[str, int]] = []
        self.request_headers: list[tuple[str, dict[str, str]]] = []
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler_class(self))
        self._httpd.daemon_threads = True
        # A short poll interval: shutdown() waits for it at the end of every test.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name="feed server"
        )

    def start(self) -> FeedServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # slow and huge handlers end now
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(TIMEOUT)

    def url(self, path: str) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def put(self, path: str, body: str | bytes, **options: object) -> str:
        """Serve ``body`` at ``path`` from now on; return its URL."""
        data = body.encode() if isinstance(body, str) else body
        with self._changed:
            self.documents[path] = Document(data, **options)  # type: ignore[arg-type]
        return self.url(path)

    def wait_for_hits(self, path: str, count: int, timeout: float = TIMEOUT) -> int:
        """Wait until ``path`` was requested ``count`` times (bounded); return the count."""
        with self._changed:
            ok = self._changed.wait_for(lambda: self.hits[path] >= count, timeout)
            assert ok, f"expected {count} requests of {path} within {timeout}s: {self.hits}"
            return self.hits[path]

    def served(self, path: str) -> list[int]:
        """The statuses answered on ``path``, in order."""
        with self._changed:
            return [status for where, status in self.statuses if where == path]

    def _record(self, path: str, status: int) -> None:
        with self._changed:
            self.statuses.append((path, status))
            self.hits[path] += 1
            self._changed.notify_all()


class _QuietServer(ThreadingHTTPServer):
    """Clients hanging up early (timeouts, size limits) is what the tests provoke: no report."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def _handler_class(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet tests

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            with server._changed:
                server.request_headers.append((path, dict(self.headers)))
            if path == "/slow":
                server._record(path, 200)
                # The server may sleep (the client must not): until the test ends at most.
                server._closing.wait(server.slow_seconds)
                return self._send(200, b"<rss version='2.0'><channel/></rss>", "application/xml")
            if path == "/huge":
                return self._huge()
            if path == "/huge-declared":
                server._record(path, 200)
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(10 * 2**30))
                self.end_headers()
                return None
            if path == "/redirect":
                return self._redirect(path, "/rss20.xml")
            if path == "/redirect-loop":
                return self._redirect(path, "/redirect-loop")
            if path.startswith("/status/"):
                code = int(path.rsplit("/", 1)[1])
                server._record(path, code)
                return self._send(code, b"no feed here", "text/plain")
            with server._changed:
                document = server.documents.get(path)
            if document is None:
                server._record(path, 404)
                return self._send(404, b"not found", "text/plain")
            if document.validators and self._unchanged(document):
                server._record(path, 304)
                self.send_response(304)
                self.send_header("ETag", document.etag)
                self.end_headers()
                return None
            server._record(path, 200)
            headers = {"ETag": document.etag, "Last-Modified": LAST_MODIFIED}
            return self._send(
                200, document.body, document.content_type, headers if document.validators else {}
            )

        def _unchanged(self, document: Document) -> bool:
            if "If-None-Match" in self.headers:
                return self.headers["If-None-Match"] == document.etag
            return self.headers.get("If-Modified-Since") == LAST_MODIFIED

        def _send(
            self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            # The client may have given up (a timeout test): nothing to do then.
            with contextlib.suppress(OSError):
                self.wfile.write(body)

        def _redirect(self, path: str, target: str) -> None:
            server._record(path, 302)
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _huge(self) -> None:
            """Stream 64 KiB chunks without a length until the client hangs up (256 MiB at most)."""
            server._record("/huge", 200)
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b"<!-- padding -->" * 4096
            try:
                for _ in range(4096):
                    if server._closing.is_set():
                        break
                    self.wfile.write(chunk)
                    with server._changed:
                        server.huge_sent += len(chunk)
            except OSError:
                pass  # the client stopped reading at its limit: what the test wants
            self.close_connection = True

    return Handler


def rss(title: str, items: list[tuple[str, str]]) -> str:
    """An RSS 2.0 document: ``items`` are (guid, title), newest first."""
    body = "".join(
        f"<item><title>{name}</title><link>https://example.org/{guid}</link>"
        f"<guid isPermaLink='false'>{guid}</guid></item>"
        for guid, name in items
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>{title}</title><link>https://example.org/</link>{body}</channel></rss>"
    )
