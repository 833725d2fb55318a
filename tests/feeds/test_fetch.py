"""Fetching over HTTP from a server the test runs: validators, redirects, limits, errors."""

from __future__ import annotations

import time

import pytest
from feed_support import FeedServer

from moksha.feeds.errors import FeedError, FetchError
from moksha.feeds.fetch import MAX_REDIRECTS, Fetcher


async def test_a_fetch_brings_the_document_and_its_validators(feed_server: FeedServer) -> None:
    async with Fetcher() as fetcher:
        result = await fetcher.fetch(feed_server.url("/rss20.xml"))
    assert result.status == 200 and not result.not_modified
    assert result.content == feed_server.documents["/rss20.xml"].body
    assert result.etag == feed_server.documents["/rss20.xml"].etag
    assert result.last_modified is not None
    [(_, headers)] = feed_server.request_headers
    assert "Moksha/" in headers["User-Agent"]
    assert "application/rss+xml" in headers["Accept"]


async def test_validators_sent_back_get_a_304_and_no_body(feed_server: FeedServer) -> None:
    url = feed_server.url("/atom10.xml")
    async with Fetcher() as fetcher:
        first = await fetcher.fetch(url)
        by_etag = await fetcher.fetch(url, etag=first.etag)
        by_date = await fetcher.fetch(url, last_modified=first.last_modified)
    assert by_etag.not_modified and by_etag.content == b""
    assert by_date.not_modified
    assert feed_server.served("/atom10.xml") == [200, 304, 304]
    sent = [headers for path, headers in feed_server.request_headers]
    assert sent[1]["If-None-Match"] == first.etag
    assert sent[2]["If-Modified-Since"] == first.last_modified


async def test_a_changed_document_comes_back_whole_despite_old_validators(
    feed_server: FeedServer,
) -> None:
    url = feed_server.put("/changing.xml", "<rss version='2.0'><channel/></rss>")
    async with Fetcher() as fetcher:
        first = await fetcher.fetch(url)
        feed_server.put("/changing.xml", "<rss version='2.0'><channel><title>2</title></channel>")
        second = await fetcher.fetch(url, etag=first.etag)
    assert second.status == 200
    assert b"<title>2</title>" in second.content


async def test_redirects_are_followed_and_the_final_url_kept(feed_server: FeedServer) -> None:
    async with Fetcher() as fetcher:
        result = await fetcher.fetch(feed_server.url("/redirect"))
    assert result.url == feed_server.url("/redirect")
    assert result.final_url == feed_server.url("/rss20.xml")
    assert b"Example &amp; Co news" in result.content


async def test_a_redirect_loop_ends_with_an_error(feed_server: FeedServer) -> None:
    async with Fetcher() as fetcher:
        with pytest.raises(FetchError, match=f"redirects more than {MAX_REDIRECTS} times"):
            await fetcher.fetch(feed_server.url("/redirect-loop"))
    assert feed_server.hits["/redirect-loop"] == MAX_REDIRECTS + 1


async def test_a_slow_server_times_out_on_the_client_side(feed_server: FeedServer) -> None:
    url = feed_server.url("/slow")
    started = time.monotonic()
    async with Fetcher(timeout=0.3) as fetcher:
        with pytest.raises(FetchError, match=r"did not answer within 0\.3 s") as caught:
            await fetcher.fetch(url)
    assert time.monotonic() - started < feed_server.slow_seconds / 2
    assert caught.value.url == url


async def test_a_huge_stream_is_abandoned_at_the_limit(feed_server: FeedServer) -> None:
    async with Fetcher(max_bytes=200_000) as fetcher:
        with pytest.raises(FetchError, match="larger than 200000 bytes"):
            await fetcher.fetch(feed_server.url("/huge"))
    # The server would send 256 MiB; the client hung up long before.
    assert feed_server.huge_sent < 64 * 2**20


async def test_a_declared_huge_length_is_refused_before_reading(feed_server: FeedServer) -> None:
    async with Fetcher(max_bytes=1000) as fetcher:
        with pytest.raises(FetchError, match="larger than 1000 bytes"):
            await fetcher.fetch(feed_server.url("/huge-declared"))


@pytest.mark.parametrize("status", [404, 500])
async def test_an_error_status_names_the_url_and_status(
    feed_server: FeedServer, status: int
) -> None:
    url = feed_server.url(f"/status/{status}")
    async with Fetcher() as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(url)
    assert caught.value.status == status
    assert str(caught.value).startswith(f"{url} answered {status} ")


async def test_a_refused_connection_is_a_fetch_error(feed_server: FeedServer) -> None:
    url = feed_server.url("/rss20.xml")
    feed_server.close()
    async with Fetcher(timeout=2) as fetcher:
        with pytest.raises(FetchError, match="cannot fetch"):
            await fetcher.fetch(url)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.org/feed", "example.org/feed.xml", "http://"]
)
async def test_only_http_and_https_urls_are_fetched(url: str) -> None:
    async with Fetcher() as fetcher:
        with pytest.raises(FeedError, match="is not a feed URL"):
            await fetcher.fetch(url)
