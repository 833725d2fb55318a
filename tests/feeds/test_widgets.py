"""The feed widgets' HTML: the entries a page shows, and the live widget's subscription."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from feed_support import FeedServer

from moksha.feeds import feed_topic
from moksha.feeds.widgets import FeedWidget, LiveFeedWidget
from moksha.widgets import WidgetError, find_widget, render_page
from moksha.widgets.live import MOKSHA_JS, WIDGETS_CSS


def entry_titles(html: str) -> list[str]:
    return re.findall(r'<strong class="moksha-entry-title">(?:<a [^>]*>|<span>)(.*?)<', html)


def test_a_feed_widget_renders_the_entries(feed_server: FeedServer, cache_url: str) -> None:
    url = feed_server.url("/rss20.xml")
    html = FeedWidget(cache=cache_url).render(url=url, id="news")
    assert html.startswith('<section id="news" class="moksha-card moksha-feed-entries"')
    assert "<h2>Example &amp; Co news</h2>" in html  # the feed's title, escaped
    assert entry_titles(html) == ["Release 2.0 &lt;b&gt;out&lt;/b&gt;", "Release 1.0"]
    assert (
        '<a href="https://example.org/news/2.0" target="_blank" rel="noopener noreferrer">' in html
    )
    # Summaries as plain text: the feed's markup never reaches the page.
    assert '<p class="moksha-entry-summary">What is new</p>' in html
    assert '<time datetime="2024-05-01T12:00:00Z">2024-05-01 12:00 UTC</time>' in html
    assert "<script" not in html


def test_limit_and_heading(feed_server: FeedServer, cache_url: str) -> None:
    widget = FeedWidget(cache=cache_url, limit=1)
    html = widget.render(url=feed_server.url("/atom10.xml"), heading="Latest <post>")
    assert entry_titles(html) == ["Second post"]
    assert "<h2>Latest &lt;post&gt;</h2>" in html
    assert '<span class="moksha-meta">1 of 2</span>' in html


class ProjectNews(FeedWidget):
    """As the original's Feed subclasses: the URL in the class."""

    url = "http://127.0.0.1:1/never-fetched.xml"


def test_a_subclass_names_its_feed(feed_server: FeedServer, cache_url: str) -> None:
    ProjectNews.url = feed_server.url("/rss10.rdf")
    try:
        html = ProjectNews(cache=cache_url).render()
    finally:
        ProjectNews.url = "http://127.0.0.1:1/never-fetched.xml"
    assert entry_titles(html) == ["An RDF item"]


def test_a_feed_that_cannot_be_fetched_renders_the_reason(
    feed_server: FeedServer, cache_url: str
) -> None:
    url = feed_server.url("/page.html")
    html = FeedWidget(cache=cache_url).render(url=url)
    assert '<p class="moksha-problem" role="alert">This feed cannot be shown now: ' in html
    assert f"{url} is an HTML page" in html
    assert '<p class="moksha-empty">No entries yet.</p>' in html


@pytest.mark.parametrize("url", ["javascript:alert(1)", "/relative.xml"])
def test_a_bad_url_is_a_widget_error(url: str) -> None:
    with pytest.raises(WidgetError, match=f"^FeedWidget: {re.escape(repr(url))} is not a feed URL"):
        FeedWidget(cache="sqlite://").render(url=url)


def test_a_missing_url_is_a_widget_error() -> None:
    with pytest.raises(WidgetError, match="FeedWidget needs the param 'url'"):
        FeedWidget(cache="sqlite://").render()


def test_a_live_feed_widget_subscribes_to_its_feeds_topic(
    feed_server: FeedServer, cache_url: str
) -> None:
    url = feed_server.url("/rss20.xml")
    html = LiveFeedWidget(cache=cache_url).render(url=url, id="live", limit=3)
    assert 'data-limit="3"' in html and 'data-entry-id="example-news-2"' in html
    assert entry_titles(html) == ["Release 2.0 &lt;b&gt;out&lt;/b&gt;", "Release 1.0"]
    topics = json.loads(re.search(r"(\[.*?\])\.forEach", html).group(1))  # type: ignore[union-attr]
    assert topics == [feed_topic(url)]
    assert 'document.getElementById("live")' in html
    # New entries are written as text, never as HTML.
    assert "innerHTML" not in html and "textContent" in html


def test_pages_link_what_the_widgets_need(feed_server: FeedServer, cache_url: str) -> None:
    url = feed_server.url("/atom10.xml")
    page = render_page(LiveFeedWidget(cache=cache_url, url=url), title="News", connection=False)
    assert WIDGETS_CSS.html() in page and MOKSHA_JS.html() in page
    assert "Second post" in page


def test_the_widgets_are_found_by_name_once_installed(
    feed_server: FeedServer, cache_url: str, installed_plugin: Path
) -> None:
    assert type(find_widget("feed_entries")) is FeedWidget
    assert type(find_widget("live_feed_entries")) is LiveFeedWidget
    widget = find_widget("feed_entries").with_params(url=feed_server.url("/rss20.xml"))
    assert isinstance(widget, FeedWidget)
    assert widget.feed_url() == feed_server.url("/rss20.xml")
