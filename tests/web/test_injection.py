"""Resource injection: which responses get the page's links, and which are left exactly as sent."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from web_support import client, serving

from moksha.web.injection import ResourceInjector, inject
from moksha.web.resources import CSSLink, JSLink
from moksha.widgets import ResourceCollector, Widget
from support import TIMEOUT

GLOBAL_JS = JSLink("/global.js")
GLOBAL_TAG = b'<script src="/global.js"></script>'
PAGE = b"<html><head></head><body><h1>Hi</h1></body></html>"


def app_sending(response: Response) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await response(scope, receive, send)

    return app


def chunked_app(chunks: list[bytes], content_type: str = "text/html") -> Any:
    """A plain ASGI app streaming ``chunks`` without a Content-Length."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", content_type.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for n, chunk in enumerate(chunks, 1):
            await send({"type": "http.response.body", "body": chunk, "more_body": n < len(chunks)})

    return app


async def fetch(app: Any, path: str = "/", method: str = "GET", **kwargs: Any) -> Any:
    async with client(ResourceInjector(app, [GLOBAL_JS], **kwargs)) as http:
        return await http.request(method, path)


# -- inject() --------------------------------------------------------------


def test_inject_puts_tags_before_the_last_closing_body_tag() -> None:
    page = b"<body><pre>&lt;/body&gt;</pre></BODY>"
    assert inject(page, [GLOBAL_JS, CSSLink("/a.css")]) == (
        b'<body><pre>&lt;/body&gt;</pre><link rel="stylesheet" href="/a.css">\n'
        b'<script src="/global.js"></script>\n</BODY>'
    )


def test_inject_leaves_fragments_and_pages_that_link_the_resource_already() -> None:
    fragment = b"<li>one more row</li>"
    assert inject(fragment, [GLOBAL_JS]) is fragment
    page = b"<body>" + GLOBAL_TAG + b"</body>"
    assert inject(page, [GLOBAL_JS, GLOBAL_JS]) is page


# -- responses that change -------------------------------------------------


async def test_an_html_page_gets_the_resources_and_a_correct_content_length() -> None:
    response = await fetch(app_sending(HTMLResponse(PAGE)))
    assert response.status_code == 200
    assert response.content == PAGE.replace(b"</body>", GLOBAL_TAG + b"\n</body>")
    assert response.headers["content-length"] == str(len(response.content))


async def test_a_page_in_another_charset_stays_in_that_charset() -> None:
    page = "<body>Grüße</body>".encode("latin-1")
    app = app_sending(Response(page, media_type="text/html; charset=latin-1"))
    response = await fetch(app)
    assert response.content == "<body>Grüße".encode("latin-1") + GLOBAL_TAG + b"\n</body>"


async def test_a_streamed_page_gets_the_tags_as_its_closing_body_tag_passes() -> None:
    response = await fetch(chunked_app([b"<html><body>", b"streamed", b"</body></html>"]))
    assert response.text == '<html><body>streamed<script src="/global.js"></script>\n</body></html>'
    assert "content-length" not in response.headers  # sent as it came: chunked


async def test_a_closing_body_tag_split_across_chunks_is_found() -> None:
    chunks = [b"<html><body>split", b"</BO", b"dy></html>"]
    response = await fetch(chunked_app(chunks))
    assert response.content == b"<html><body>split" + GLOBAL_TAG + b"\n</BOdy></html>"


async def test_a_streamed_page_that_links_the_resource_already_is_not_given_it_twice() -> None:
    chunks = [b"<html><head>" + GLOBAL_TAG + b"</head><body>", b"hi</body></html>"]
    response = await fetch(chunked_app(chunks))
    assert response.content == b"".join(chunks)


async def test_each_chunk_of_a_streamed_page_reaches_the_client_before_the_next_is_sent() -> None:
    """A page streamed at 0 s and later: the first part is shown at 0 s, not at the end."""
    first_read = asyncio.Event()

    async def slow_page(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"<html><body><p>first</p>", "more_body": True}
        )
        # The rest is sent only once the client has shown the first part.
        await asyncio.wait_for(first_read.wait(), TIMEOUT)
        await send({"type": "http.response.body", "body": b"<p>second</p></body></html>"})

    async with serving(ResourceInjector(slow_page, [GLOBAL_JS])) as ws_url:
        url = ws_url.replace("ws://", "http://")
        async with httpx.AsyncClient(timeout=TIMEOUT) as http, http.stream("GET", url) as response:
            chunks = response.aiter_bytes()
            received = await asyncio.wait_for(anext(chunks), TIMEOUT)
            assert received == b"<html><body><p>first</p>"
            first_read.set()
            rest = b"".join([chunk async for chunk in chunks])
    assert rest == b"<p>second</p>" + GLOBAL_TAG + b"\n</body></html>"


async def test_a_page_of_known_length_sent_in_parts_gets_a_corrected_length() -> None:
    """As a WSGI app's page comes (a2wsgi sends each part, then an empty one)."""

    async def in_parts(scope: Scope, receive: Receive, send: Send) -> None:
        body = [b"<html><body>", b"sized</body></html>", b""]
        headers = [
            (b"content-type", b"text/html"),
            (b"content-length", str(len(b"".join(body))).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for n, part in enumerate(body, 1):
            await send({"type": "http.response.body", "body": part, "more_body": n < len(body)})

    response = await fetch(in_parts)
    assert response.content == b"<html><body>sized" + GLOBAL_TAG + b"\n</body></html>"
    assert response.headers["content-length"] == str(len(response.content))


async def test_the_etag_of_a_changed_page_becomes_weak() -> None:
    response = await fetch(app_sending(HTMLResponse(PAGE, headers={"ETag": '"v1"'})))
    assert GLOBAL_TAG in response.content
    assert response.headers["etag"] == 'W/"v1"'


# -- responses left untouched ----------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        JSONResponse({"html": "<body></body>"}),
        Response(PAGE, media_type="text/plain"),
        Response(gzip.compress(PAGE), media_type="text/html", headers={"Content-Encoding": "gzip"}),
        # Encoded bytes are never looked into, whatever they happen to hold.
        Response(PAGE, media_type="text/html", headers={"Content-Encoding": "br"}),
        HTMLResponse(b"<p>a fragment, no body tag</p>", headers={"ETag": '"f"'}),
    ],
    ids=["json", "plain-text", "gzip", "encoded", "fragment"],
)
async def test_responses_that_are_not_whole_plain_html_pages_are_untouched(
    response: Response,
) -> None:
    app = ResourceInjector(app_sending(response), [GLOBAL_JS])
    async with client(app) as http, http.stream("GET", "/") as untouched:
        raw = b"".join([chunk async for chunk in untouched.aiter_raw()])
    assert untouched.status_code == response.status_code
    assert raw == response.body  # the bytes as sent (httpx would gunzip .content)
    assert GLOBAL_TAG not in raw
    for name, value in response.headers.items():
        assert untouched.headers[name] == value


async def test_server_sent_events_pass_untouched() -> None:
    async def events() -> Any:
        yield "data: <body></body>\n\n"

    response = await fetch(app_sending(StreamingResponse(events(), media_type="text/event-stream")))
    assert response.text == "data: <body></body>\n\n"


async def test_a_head_request_is_untouched() -> None:
    response = await fetch(app_sending(HTMLResponse(PAGE)), method="HEAD")
    assert response.headers["content-length"] == str(len(PAGE))


async def test_a_streamed_page_larger_than_the_limit_passes_untouched() -> None:
    chunks = [b"<html><body>", b"x" * 600, b"y" * 600, b"</body></html>"]
    response = await fetch(chunked_app(chunks), limit=1000)
    assert response.content == b"".join(chunks)
    assert "content-length" not in response.headers


async def test_a_page_whose_content_length_exceeds_the_limit_passes_untouched() -> None:
    page = b"<body>" + b"z" * 2000 + b"</body>"
    response = await fetch(app_sending(HTMLResponse(page)), limit=1000)
    assert response.content == page


# -- resources of the widgets rendered for the request ---------------------


class Clock(Widget):
    template = '<time id="{{ id }}"></time>'
    resources = [JSLink("/clock.js"), CSSLink("/clock.css")]


async def widget_page(scope: Scope, receive: Receive, send: Send) -> None:
    widgets = Clock().render() + Clock().render()
    await HTMLResponse(f"<html><head></head><body>{widgets}</body></html>")(scope, receive, send)


async def test_resources_of_widgets_rendered_for_the_request_are_injected_once() -> None:
    response = await fetch(widget_page, collecting=ResourceCollector.collecting)
    body = response.text
    assert body.count('<script src="/clock.js"></script>') == 1
    assert body.count('<link rel="stylesheet" href="/clock.css">') == 1
    assert body.index("clock.css") < body.index("global.js") < body.index("clock.js")
    assert body.index("clock.js") < body.index("</body>")
    assert '<time id="clock-1">' in body and '<time id="clock-2">' in body


async def test_without_a_collector_only_the_global_resources_go_in() -> None:
    response = await fetch(widget_page)
    assert GLOBAL_TAG in response.content
    assert b"clock.js" not in response.content


class FakeCollector:
    def __init__(self) -> None:
        self.opened = 0

    @contextlib.contextmanager
    def collecting(self) -> Iterator[Any]:
        self.opened += 1

        class Collected:
            def resources(self) -> list[Any]:
                return [CSSLink("/from-fake.css")]

        yield Collected()


async def test_the_collector_is_an_injected_dependency_opened_once_per_request() -> None:
    fake = FakeCollector()
    response = await fetch(app_sending(HTMLResponse(PAGE)), collecting=fake.collecting)
    assert b'<link rel="stylesheet" href="/from-fake.css">' in response.content
    assert fake.opened == 1


@pytest.mark.parametrize(
    "length", [[(b"content-length", b"100")], []], ids=["known-length", "streamed"]
)
async def test_a_page_the_app_never_finishes_is_sent_as_far_as_it_went(
    length: list[tuple[bytes, bytes]],
) -> None:
    sent: list[dict[str, Any]] = []

    async def unfinished(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/html"), *length]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"<html><body>part</bo", "more_body": True}
        )

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await ResourceInjector(unfinished, [GLOBAL_JS])(scope, receive, send)
    assert sent[0]["type"] == "http.response.start"
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"<html><body>part</bo"


async def test_a_message_it_does_not_know_comes_after_what_was_held_back() -> None:
    sent: list[dict[str, Any]] = []
    unknown = {"type": "http.response.trailers", "headers": [], "more_trailers": False}

    async def with_trailers(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/html"), (b"content-length", b"30")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"<html><body>", "more_body": True})
        await send(unknown)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await ResourceInjector(with_trailers, [GLOBAL_JS])(scope, receive, send)
    assert [m["type"] for m in sent] == [
        "http.response.start",
        "http.response.body",
        "http.response.trailers",
    ]
    assert sent[1]["body"] == b"<html><body>"
