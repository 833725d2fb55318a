"""``Feed(url)`` outside any hub, sync and async; the cache behind it; the backoff."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from feed_support import FeedServer, rss

from moksha.errors import ConfigError
from moksha.feeds import Feed, FeedCache, FeedError, FetchError, NotAFeed
from moksha.feeds.backoff import Backoff
from moksha.feeds.cache import SEEN_RETENTION


def test_a_feed_gives_its_entries_count_and_iteration(
    feed_server: FeedServer, cache_url: str
) -> None:
    with Feed(feed_server.url("/rss20.xml"), cache=cache_url) as feed:
        titles = [entry["title"] for entry in feed.entries()]
        assert titles == ["Release 2.0 <b>out</b>", "Release 1.0"]
        assert feed.num_entries() == 2
        assert [entry["id"] for entry in feed] == ["example-news-2", "example-news-1"]
        assert [entry["title"] for entry in feed.entries(limit=1)] == ["Release 2.0 <b>out</b>"]
        # The original Moksha's names still work.
        assert [e["id"] for e in feed.iterentries(limit=1)] == ["example-news-2"]
        assert len(feed.get_entries()) == 2
    # Fetched once: every later call was answered by the cache (feed.max_age, 300 s).
    assert feed_server.hits["/rss20.xml"] == 1


async def test_the_same_feed_from_asyncio(feed_server: FeedServer, cache_url: str) -> None:
    async with Feed(feed_server.url("/atom10.xml"), cache=cache_url) as feed:
        entries = await feed.aentries()
        assert await feed.anum_entries() == 2
        assert [entry["title"] async for entry in feed] == ["Second post", "First post"]
    assert entries[0]["feed"] == feed_server.url("/atom10.xml")


async def test_sync_calls_work_inside_a_running_event_loop(
    feed_server: FeedServer, cache_url: str
) -> None:
    # What a sync widget rendered by an async web handler does.
    with Feed(feed_server.url("/rss20.xml"), cache=cache_url) as feed:
        assert feed.num_entries() == 2


def test_a_stale_copy_is_revalidated_with_a_conditional_get(
    feed_server: FeedServer, cache_url: str
) -> None:
    url = feed_server.url("/rss20.xml")
    with Feed(url, cache=cache_url, max_age=0) as feed:
        first = feed.load()
        second = feed.load()
    assert feed_server.served("/rss20.xml") == [200, 304]
    assert second.entries == first.entries
    assert second.fetched_at >= first.fetched_at


def test_the_cache_outlives_the_feed_object(feed_server: FeedServer, cache_url: str) -> None:
    url = feed_server.url("/rss20.xml")
    with Feed(url, cache=cache_url) as feed:
        feed.entries()
    with Feed(url, config={"feed_cache": cache_url}) as again:
        assert again.num_entries() == 2
    assert feed_server.hits["/rss20.xml"] == 1


def test_a_failing_fetch_falls_back_to_the_cached_copy(
    feed_server: FeedServer, cache_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = feed_server.put("/flaky.xml", rss("Flaky", [("a", "A")]))
    with Feed(url, cache=cache_url, max_age=0) as feed:
        assert feed.num_entries() == 1
        feed_server.put("/flaky.xml", "<html><body>Maintenance</body></html>", validators=False)
        with caplog.at_level(logging.WARNING, logger="moksha.feeds"):
            assert [entry["title"] for entry in feed.entries()] == ["A"]
    assert f"{url} is an HTML page" in caplog.text
    assert "Showing the copy fetched" in caplog.text


def test_with_nothing_cached_the_error_is_raised(feed_server: FeedServer, cache_url: str) -> None:
    with Feed(feed_server.url("/page.html"), cache=cache_url) as feed, pytest.raises(NotAFeed):
        feed.entries()
    missing = Feed(feed_server.url("/status/404"), cache=cache_url)
    with missing, pytest.raises(FetchError, match="answered 404"):
        missing.entries()


def test_config_limits_apply(feed_server: FeedServer, cache_url: str) -> None:
    config = {"feed.max_bytes": "1000", "feed_cache": cache_url}
    feed = Feed(feed_server.url("/huge"), config=config)
    with feed, pytest.raises(FetchError, match="larger than 1000 bytes"):
        feed.entries()


def test_a_url_that_is_not_http_is_refused_at_once() -> None:
    with pytest.raises(FeedError, match="is not a feed URL"):
        Feed("/etc/passwd", cache="sqlite://")


# -- the cache -----------------------------------------------------------------


async def test_seen_ids_are_remembered_and_forgotten_after_the_retention(
    cache_url: str,
) -> None:
    url = "https://example.org/feed"
    async with FeedCache(cache_url) as cache:
        assert await cache.unseen(url, ["a", "b"]) == {"a", "b"}
        await cache.remember(url, ["a", "b"], now=1000.0)
        assert await cache.unseen(url, ["a", "b", "c"]) == {"c"}
        assert await cache.unseen("https://example.org/other", ["a"]) == {"a"}
        # "a" is still in the feed later on: refreshed, kept; "b" left it and is forgotten.
        await cache.remember(url, ["a"], now=1000.0 + SEEN_RETENTION / 2)
        await cache.remember(url, ["a"], now=1001.0 + SEEN_RETENTION)
        assert await cache.unseen(url, ["a", "b"]) == {"b"}


async def test_long_ids_and_many_of_them_fit(cache_url: str) -> None:
    url = "https://example.org/" + "p" * 3000
    ids = [f"https://example.org/{'x' * 2000}/{n}" for n in range(1200)]
    async with FeedCache(cache_url) as cache:
        await cache.remember(url, ids)
        assert await cache.unseen(url, [*ids, "new"]) == {"new"}


def test_a_cache_in_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as caught:
        FeedCache(f"sqlite:///{tmp_path / 'nowhere' / 'feeds.sqlite'}")
    assert "feed_cache" in str(caught.value)


# -- the backoff -----------------------------------------------------------------


def test_a_failing_feed_waits_twice_as_long_each_time_up_to_the_cap() -> None:
    now = [0.0]
    backoff = Backoff(base=10.0, cap=45.0, clock=lambda: now[0])
    url = "https://example.org/dead"
    delays = [backoff.failed(url) for _ in range(5)]
    assert delays == [10.0, 20.0, 40.0, 45.0, 45.0]
    assert backoff.failures(url) == 5 and not backoff.ready(url)
    now[0] = 44.0  # a tenth of base early is close enough for a poll on schedule
    assert backoff.ready(url)
    assert backoff.ready("https://example.org/alive")
    assert backoff.succeeded(url) == 5
    assert backoff.failing() == {} and backoff.failed(url) == 10.0
