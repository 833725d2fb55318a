"""The feed widgets under the import paths Moksha 1.x code used, subclassed as it did."""

from __future__ import annotations

from moksha.feeds import widgets
from moksha.feeds.widgets.feed import FeedWidget
from moksha.feeds.widgets.live import LiveFeedWidget


def test_the_original_paths_name_the_feed_widgets() -> None:
    assert FeedWidget is widgets.FeedWidget
    assert LiveFeedWidget is widgets.LiveFeedWidget


def test_an_original_subclass_with_a_url_shows_that_feed() -> None:
    class ProjectNews(LiveFeedWidget):
        url = "https://example.org/news.atom"

    assert ProjectNews().feed_url() == "https://example.org/news.atom"
