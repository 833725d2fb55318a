"""``moksha feeds add / list / remove``, run in-process through ``main``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from feed_support import FeedServer

from moksha.cli import main
from moksha.feeds import feed_topic


def test_add_checks_the_feed_and_appends_it_to_feeds_txt(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = feed_server.url("/rss20.xml")
    assert main(["feeds", "add", url]) == 0
    out, err = capsys.readouterr()
    assert out == (
        f"added {url} ('Example & Co news', 2 entries) to feeds.txt; "
        f"its entries go to {feed_topic(url)}\n"
    )
    assert "moksha.feedaggregator = true" in err  # the stream is off by default: say so
    assert (tmp_path / "feeds.txt").read_text() == f"{url}\n"
    assert main(["feeds", "add", url]) == 0
    assert capsys.readouterr().out == f"{url} is already in feeds.txt\n"
    assert feed_server.hits["/rss20.xml"] == 2


def test_add_refuses_an_html_page_and_names_the_feed_it_links_to(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = feed_server.url("/page.html")
    assert main(["feeds", "add", url]) == 1
    err = capsys.readouterr().err
    assert (
        f"Error: {url} is an HTML page, not an RSS or Atom feed; the page links to a feed: "
        f"{feed_server.url('/rss.xml')}. Add the feed's URL instead. Nothing was added to "
        "feeds.txt." in " ".join(err.split())
    )
    assert "Traceback" not in err
    assert not (tmp_path / "feeds.txt").exists()


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/malformed.xml", "is not an RSS or Atom feed"), ("/status/404", "answered 404")],
)
def test_add_refuses_what_is_not_a_feed(
    feed_server: FeedServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    path: str,
    reason: str,
) -> None:
    assert main(["feeds", "add", feed_server.url(path)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert reason in err and "Nothing was added to feeds.txt" in err
    assert not (tmp_path / "feeds.txt").exists()


def test_add_refuses_a_url_that_is_not_http(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["feeds", "add", "example.org/feed"]) == 1
    assert "is not a feed URL: write it as http://host/path" in capsys.readouterr().err


def test_no_check_adds_without_fetching(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = feed_server.url("/not-yet.xml")
    feeds = tmp_path / "conf" / "my-feeds.txt"
    feeds.parent.mkdir()
    assert main(["feeds", "add", url, "--no-check", "--file", str(feeds)]) == 0
    assert feeds.read_text() == f"{url}\n"
    assert feed_server.hits == {}


def test_list_shows_every_feed_with_its_origin_and_topic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "feeds.txt").write_text(
        "# news\nhttps://example.org/news.atom  # the news\n\nhttps://blog.example.org/rss\n"
    )
    (tmp_path / "development.ini").write_text(
        "[app:main]\nmoksha.feedaggregator = true\nfeed.urls = https://a.example/f\n"
    )
    assert main(["feeds", "list", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [
        {"url": url, "origin": origin, "topic": feed_topic(url)}
        for url, origin in [
            ("https://a.example/f", "feed.urls"),
            ("https://example.org/news.atom", "feeds.txt"),
            ("https://blog.example.org/rss", "feeds.txt"),
        ]
    ]
    assert err == ""
    assert main(["feeds", "list"]) == 0
    table = capsys.readouterr().out
    assert "https://example.org/news.atom" in table and feed_topic("https://a.example/f") in table


def test_list_without_feeds_says_how_to_add_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["feeds", "list"]) == 0
    out, err = capsys.readouterr()
    assert "No feeds: add one with `moksha feeds add URL`" in out
    assert "moksha.feedaggregator = true" in err


def test_remove_takes_a_feed_out_and_keeps_the_comments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feeds = tmp_path / "feeds.txt"
    feeds.write_text("# keep me\nhttps://a.example/f\nhttps://b.example/g  # b\n")
    assert main(["feeds", "remove", "https://b.example/g"]) == 0
    assert feeds.read_text() == "# keep me\nhttps://a.example/f\n"
    assert main(["feeds", "remove", "https://c.example/h"]) == 1
    assert "https://c.example/h is not in feeds.txt; it lists: https://a.example/f" in (
        " ".join(capsys.readouterr().err.split())
    )
