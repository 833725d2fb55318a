"""The feed stream in a hub: new entries on ``moksha.feeds.<feed id>``, each once, whatever fails.

The hub runs on the memory bus (the ``moksha_hub`` fixture records every
message); the feeds come from the local :class:`~feed_support.FeedServer`.
Tests wait for the server to see the next poll instead of sleeping: polls do
not overlap, so once a feed is requested again the poll before has finished.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from feed_support import FeedServer, rss

from moksha.feeds import FeedStream, feed_topic
from moksha.feeds.settings import FeedSettings
from moksha.feeds.sources import feed_sources
from moksha.pytest_plugin import HubHarness

POLL = 0.05


def stream_config(tmp_path: Path, cache_url: str, *urls: str, **more: Any) -> dict[str, Any]:
    return {
        "moksha.feedaggregator": "true",
        "feed.urls": " ".join(urls),
        "feed_cache": cache_url,
        "feed.poll_frequency": POLL,
        "feed.timeout": 2,
        "feed.file": str(tmp_path / "feeds.txt"),
        **more,
    }


def bodies(harness: HubHarness, url: str) -> list[dict[str, Any]]:
    return [m.body for m in harness.messages if m.topic == feed_topic(url)]


def test_each_entry_is_published_once_on_its_feeds_topic(
    feed_server: FeedServer, moksha_hub: HubHarness, tmp_path: Path, cache_url: str
) -> None:
    rss_url, atom_url = feed_server.url("/rss20.xml"), feed_server.url("/atom10.xml")
    moksha_hub.start(
        producers=[FeedStream], config=stream_config(tmp_path, cache_url, rss_url, atom_url)
    )
    messages = moksha_hub.wait_for("moksha.feeds.#", count=4)
    assert {m.topic for m in messages} == {feed_topic(rss_url), feed_topic(atom_url)}
    first, second = bodies(moksha_hub, rss_url)
    # Oldest first, as they were written; the body a consumer gets:
    assert [first["id"], second["id"]] == ["example-news-1", "example-news-2"]
    assert second == {
        "title": "Release 2.0 <b>out</b>",
        "link": "https://example.org/news/2.0",
        "published": "2024-05-01T12:00:00Z",
        "summary": "<p>What is <b>new</b></p>",
        "id": "example-news-2",
        "feed": rss_url,
        "feed_title": "Example & Co news",
    }
    # Two more polls: conditional GETs answered 304, nothing published again.
    feed_server.wait_for_hits("/rss20.xml", 3)
    feed_server.wait_for_hits("/atom10.xml", 3)
    assert feed_server.served("/rss20.xml")[:3] == [200, 304, 304]
    assert len(moksha_hub.wait_for("moksha.feeds.*", count=4)) == 4
    assert len([m for m in moksha_hub.messages if m.topic.startswith("moksha.feeds.")]) == 4


def test_an_entry_added_between_polls_is_published_alone(
    feed_server: FeedServer, moksha_hub: HubHarness, tmp_path: Path, cache_url: str
) -> None:
    url = feed_server.put("/growing.xml", rss("Growing", [("b", "B"), ("a", "A")]))
    moksha_hub.start(producers=[FeedStream], config=stream_config(tmp_path, cache_url, url))
    moksha_hub.wait_for(feed_topic(url), count=2)
    feed_server.put("/growing.xml", rss("Growing", [("c", "C"), ("b", "B"), ("a", "A")]))
    moksha_hub.wait_for(feed_topic(url), count=3)
    hits = feed_server.hits["/growing.xml"]
    feed_server.wait_for_hits("/growing.xml", hits + 2)  # the poll after it has finished
    assert [body["title"] for body in bodies(moksha_hub, url)] == ["A", "B", "C"]


def test_entries_are_not_published_again_after_a_restart(
    feed_server: FeedServer, tmp_path: Path, cache_url: str
) -> None:
    # No validators: every poll downloads the whole feed, so only the seen ids dedupe.
    two = rss("Plain", [("2", "Two"), ("1", "One")])
    url = feed_server.put("/plain.xml", two, validators=False)
    config = stream_config(tmp_path, cache_url, url)
    first = HubHarness(config)
    try:
        first.start(producers=[FeedStream])
        first.wait_for(feed_topic(url), count=2)
    finally:
        first.close()
    three = rss("Plain", [("3", "Three"), ("2", "Two"), ("1", "One")])
    feed_server.put("/plain.xml", three, validators=False)
    hits = feed_server.hits["/plain.xml"]
    second = HubHarness(config)
    try:
        second.start(producers=[FeedStream])
        [message] = second.wait_for(feed_topic(url))
        feed_server.wait_for_hits("/plain.xml", hits + 3)
        assert [body["title"] for body in bodies(second, url)] == ["Three"]
    finally:
        second.close()
    assert message.body["id"] == "3"
    assert set(feed_server.served("/plain.xml")) == {200}


def test_failing_feeds_are_logged_backed_off_and_never_stop_the_others(
    feed_server: FeedServer,
    moksha_hub: HubHarness,
    tmp_path: Path,
    cache_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = feed_server.put("/good.xml", rss("Good", [("1", "One")]))
    bad_paths = ["/malformed.xml", "/page.html", "/huge", "/status/500", "/redirect-loop"]
    bad = [feed_server.url(path) for path in bad_paths]
    settings = {"feed.max_bytes": 100_000, "feed.max_backoff": 60}
    config = stream_config(tmp_path, cache_url, good, *bad, **settings)
    with caplog.at_level(logging.WARNING, logger="moksha.feeds"):
        started = time.monotonic()
        hub = moksha_hub.start(producers=[FeedStream], config=config)
        moksha_hub.wait_for(feed_topic(good))
        feed_server.put("/good.xml", rss("Good", [("2", "Two"), ("1", "One")]))
        [_, later] = moksha_hub.wait_for(feed_topic(good), count=2)
        feed_server.wait_for_hits("/good.xml", 12)
        elapsed = time.monotonic() - started
    assert later.body["title"] == "Two"
    for url in bad:
        assert f"{url} " in caplog.text
        assert "(the feed is listed in feed.urls)" in caplog.text
    assert "Trying again in 0.05 s" in caplog.text
    assert "Trying again in 0.1 s, after 2 failures in a row" in caplog.text
    # Without backoff each would have been tried 12 times; with it, about log2(elapsed / POLL).
    most = 2 + math.log2(elapsed / POLL)
    for url in bad:
        attempts = [r for r in caplog.records if r.getMessage().startswith(f"{url} ")]
        assert 2 <= len(attempts) <= most < 12, (url, len(attempts), most)
    [stream] = hub.producers
    report = stream.__json__()
    assert report["active"] and report["feeds"] == 6 and report["published"] == 2
    assert set(report["failing"]) == set(bad)


def test_a_slow_feed_times_out_and_the_others_are_published(
    feed_server: FeedServer,
    moksha_hub: HubHarness,
    tmp_path: Path,
    cache_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good, slow = feed_server.url("/rss20.xml"), feed_server.url("/slow")
    config = stream_config(tmp_path, cache_url, slow, good, **{"feed.timeout": 0.3})
    with caplog.at_level(logging.WARNING, logger="moksha.feeds"):
        moksha_hub.start(producers=[FeedStream], config=config)
        moksha_hub.wait_for(feed_topic(good), count=2)
        feed_server.wait_for_hits("/rss20.xml", 2)  # the first poll is over
    assert f"{slow} did not answer within 0.3 s (feed.timeout)." in caplog.text


def test_post_processors_from_the_entry_point_change_and_drop_entries(
    feed_server: FeedServer,
    moksha_hub: HubHarness,
    tmp_path: Path,
    cache_url: str,
    installed_plugin: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = feed_server.put("/news.xml", rss("News", [("2", "Draft: not yet"), ("1", "Hello")]))
    with caplog.at_level(logging.ERROR, logger="moksha.feeds"):
        moksha_hub.start(producers=[FeedStream], config=stream_config(tmp_path, cache_url, url))
        [message] = moksha_hub.wait_for(feed_topic(url))
        feed_server.wait_for_hits("/news.xml", 3)
    # drop_drafts, then shout, then the async tag, in the order of their names.
    assert message.body["title"] == "HELLO"
    assert message.body["tags"] == ["news"]
    assert len(bodies(moksha_hub, url)) == 1
    assert "cannot load feed post-processor 'broken'" in caplog.text


class FailsOnceOnB:
    """Raises the first time it sees entry "b", as a processor with a flaky service would."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, entry: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(entry["id"])
        if entry["id"] == "b" and self.calls.count("b") == 1:
            raise ConnectionError("the translation service is down")
        return entry


def test_an_entry_a_post_processor_failed_on_is_tried_again_at_the_next_poll(
    feed_server: FeedServer,
    moksha_hub: HubHarness,
    tmp_path: Path,
    cache_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    processor = FailsOnceOnB()

    class Stream(FeedStream):
        post_processors: ClassVar = [processor]

    url = feed_server.put("/flaky.xml", rss("Flaky", [("b", "B"), ("a", "A")]))
    moksha_hub.start(producers=[Stream], config=stream_config(tmp_path, cache_url, url))
    a, b = moksha_hub.wait_for(feed_topic(url), count=2)
    assert (a.body["id"], b.body["id"]) == ("a", "b")
    assert f"feed {url}: a post-processor failed on entry b" in caplog.text
    assert processor.calls[:3] == ["a", "b", "b"]  # "a" was remembered, not processed again


def test_feeds_come_from_the_config_the_feeds_file_and_the_dashboards_feed_widgets(
    feed_server: FeedServer,
    moksha_hub: HubHarness,
    tmp_path: Path,
    cache_url: str,
    installed_plugin: Path,
) -> None:
    from_config = feed_server.url("/rss20.xml")
    from_file = feed_server.url("/atom10.xml")
    from_widget = feed_server.url("/rss10.rdf")
    (tmp_path / "feeds.txt").write_text(
        f"# team feeds\n\n{from_file}   # the atom one\n{from_config}\nnot a url\n"
    )
    layout = tmp_path / "layout.json"
    layout.write_text(
        json.dumps(
            [
                {"widget": "feed", "params": {"topic": "moksha.feeds.#"}},
                {"widget": "live_feed_entries", "params": {"url": from_widget, "limit": 5}},
            ]
        )
    )
    config = stream_config(
        tmp_path, cache_url, from_config, **{"moksha.dashboard.layout": str(layout)}
    )
    sources = feed_sources(FeedSettings.from_config(config), config)
    assert [(s.url, s.origin) for s in sources] == [
        (from_config, "feed.urls"),
        (from_file, str(tmp_path / "feeds.txt")),
        (from_widget, f"widget live_feed_entries in {layout}"),
    ]
    moksha_hub.start(producers=[FeedStream], config=config)
    for url, count in [(from_config, 2), (from_file, 2), (from_widget, 1)]:
        moksha_hub.wait_for(feed_topic(url), count=count)


async def test_the_stream_is_off_unless_the_config_turns_it_on(
    feed_server: FeedServer, moksha_hub: HubHarness, cache_url: str
) -> None:
    url = feed_server.url("/rss20.xml")
    hub = moksha_hub.start(producers=[FeedStream], config={"feed.urls": url})
    # Off: the hub neither creates nor lists it (Producer.enabled).
    assert hub.producers == []
    assert not FeedStream.enabled(hub.config)
    assert FeedStream.enabled({"moksha.feedaggregator": "on"})
    await moksha_hub.asend("probe", {})
    await moksha_hub.await_for("probe")
    assert feed_server.hits["/rss20.xml"] == 0
