"""Parsing the fixture feeds, feed URLs as topic words, and the feed settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from moksha.errors import ConfigError
from moksha.feeds import FeedSettings, NotAFeed, feed_id, feed_topic, naming
from moksha.feeds.parse import parse_feed
from moksha.topics import matches

DATA = Path(__file__).resolve().parents[1] / "data" / "feeds"


def test_rss_2_entries_have_the_published_fields() -> None:
    feed = parse_feed((DATA / "rss20.xml").read_bytes(), "https://example.org/rss")
    assert (feed.title, feed.link, feed.version, feed.well_formed) == (
        "Example & Co news",
        "https://example.org/",
        "rss20",
        True,
    )
    newest, oldest = feed.entries
    assert newest == {
        "title": "Release 2.0 <b>out</b>",  # text: the widget escapes it
        "link": "https://example.org/news/2.0",
        "published": "2024-05-01T12:00:00Z",  # 14:00 +0200, in UTC
        "summary": "<p>What is <b>new</b></p>",  # feedparser removed the <script>
        "id": "example-news-2",
        "feed": "https://example.org/rss",
        "feed_title": "Example & Co news",
    }
    assert oldest["published"] == "2024-01-01T09:30:00Z"


def test_atom_entries_resolve_relative_links_against_the_final_url() -> None:
    feed = parse_feed(
        (DATA / "atom10.xml").read_bytes(),
        "https://old.example.org/atom",
        final_url="https://atom.example.org/feeds/atom.xml",
    )
    assert feed.version == "atom10"
    assert [entry["link"] for entry in feed.entries] == [
        "https://atom.example.org/posts/2",
        "https://atom.example.org/posts/1",
    ]
    # No <published>: the update time stands in; otherwise the publication time, in UTC.
    assert [entry["published"] for entry in feed.entries] == [
        "2024-03-02T10:00:00Z",
        "2024-03-01T07:15:00Z",
    ]
    assert {entry["feed"] for entry in feed.entries} == {"https://old.example.org/atom"}


@pytest.mark.parametrize(
    ("name", "version", "titles"),
    [
        ("rss10.rdf", "rss10", ["An RDF item"]),
        ("rss091.xml", "rss091u", ["Old news", "No link at all"]),
    ],
)
def test_older_formats_parse(name: str, version: str, titles: list[str]) -> None:
    feed = parse_feed((DATA / name).read_bytes(), "https://feeds.example.net/f")
    assert feed.version == version
    assert [entry["title"] for entry in feed.entries] == titles


def test_an_entry_without_id_goes_by_its_link_else_by_a_hash_of_its_text() -> None:
    feed = parse_feed((DATA / "rss091.xml").read_bytes(), "https://feeds.example.net/f")
    with_link, without = feed.entries
    assert with_link["id"] == "https://old.example.org/1"
    assert re.fullmatch(r"sha256:[0-9a-f]{32}", without["id"])
    again = parse_feed((DATA / "rss091.xml").read_bytes(), "https://feeds.example.net/f")
    assert again.entries[1]["id"] == without["id"]  # stable: dedupe works across polls


def test_a_broken_but_recognisable_feed_is_read_leniently() -> None:
    feed = parse_feed((DATA / "broken.xml").read_bytes(), "https://broken.example.org/rss")
    assert not feed.well_formed
    assert [entry["title"] for entry in feed.entries] == ["Tom & Jerry"]


def test_a_malformed_document_is_not_a_feed() -> None:
    with pytest.raises(NotAFeed, match=r"^https://x\.example/f is not an RSS or Atom feed \("):
        parse_feed((DATA / "malformed.xml").read_bytes(), "https://x.example/f")


def test_an_html_page_is_not_a_feed_and_the_error_names_the_feed_it_links_to() -> None:
    with pytest.raises(NotAFeed) as caught:
        parse_feed(
            (DATA / "page.html").read_bytes(),
            "https://example.org/",
            content_type="text/html; charset=utf-8",
        )
    assert str(caught.value) == (
        "https://example.org/ is an HTML page, not an RSS or Atom feed; "
        "the page links to a feed: https://example.org/rss.xml."
    )
    assert caught.value.alternates == ("https://example.org/rss.xml",)


def test_an_empty_document_says_so() -> None:
    with pytest.raises(NotAFeed, match="sent an empty document"):
        parse_feed(b"", "https://example.org/empty")


# -- topics ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "topic"),
    [
        ("https://blog.example.org/feed.xml", "moksha.feeds.blog_example_org_feed_xml-4c0adcbe"),
        (
            "http://127.0.0.1:8000/rss?tag=python",
            "moksha.feeds.127_0_0_1_8000_rss_tag_python-2022d118",
        ),
        ("https://example.com/", "moksha.feeds.example_com-0f115db0"),
    ],
)
def test_the_documented_topics(url: str, topic: str) -> None:
    assert feed_topic(url) == topic
    assert f"``{topic}``" in (naming.__doc__ or "")


@pytest.mark.parametrize(
    "url",
    [
        "https://Example.ORG/Feeds/All.Atom",
        "https://user:secret@example.org/private.rss#top",
        "http://[::1]:8080/feed",
        "https://example.org/" + "very-long-path/" * 20,
        "https://例え.jp/フィード",
    ],
)
def test_every_feed_id_is_one_topic_word_that_wildcards_catch(url: str) -> None:
    word = feed_id(url)
    assert re.fullmatch(r"[a-z0-9_-]{1,48}-[0-9a-f]{8}|[0-9a-f]{8}", word), word
    assert "secret" not in word  # a password in the URL does not end up in topics
    for pattern in ("moksha.feeds.#", "moksha.feeds.*", f"moksha.feeds.{word}"):
        assert matches(pattern, feed_topic(url))


def test_urls_that_read_alike_get_their_own_topics() -> None:
    urls = ["https://example.org/a.b", "https://example.org/a_b", "http://example.org/a.b"]
    assert len({feed_id(url) for url in urls}) == 3
    assert feed_id(" https://example.org/a.b ") == feed_id("https://example.org/a.b")


# -- settings ----------------------------------------------------------------


def test_settings_from_ini_text() -> None:
    settings = FeedSettings.from_config(
        {
            "moksha.feedaggregator": "yes",
            "feed.urls": "https://a.example/f,\n https://b.example/g",
            "feed.poll_frequency": "60",
            "feed.deferred_groups": "3",
            "feed.max_age": "0",
        }
    )
    assert settings.enabled
    assert settings.urls == ("https://a.example/f", "https://b.example/g")
    assert (settings.poll_frequency, settings.deferred_groups, settings.max_age) == (60.0, 3, 0.0)


def test_the_stream_is_off_by_default() -> None:
    assert FeedSettings.from_config({}) == FeedSettings()
    assert not FeedSettings().enabled


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("moksha.feedaggregator", "perhaps"),
        ("feed.deferred_groups", "0"),
        ("feed.poll_frequency", "soon"),
        ("feed.timeout", "-1"),
        ("feed.urls", 42),
    ],
)
def test_a_bad_setting_names_its_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)} \(from code\): expected"):
        FeedSettings.from_config({key: value})
