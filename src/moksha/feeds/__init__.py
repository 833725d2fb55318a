"""Feeds: RSS and Atom fetched, cached, and streamed onto topics.

====================  ==============================================================
:mod:`.feed`          ``Feed(url)``: entries of a feed, from the cache or fetched (sync and async)
:mod:`.fetch`         HTTP: conditional GET, redirects, a deadline, a size limit
:mod:`.parse`         feedparser's result as plain ``Entry`` dicts
:mod:`.cache`         ``FeedCache``: parsed feeds and published entry ids (SQLAlchemy)
:mod:`.naming`        a feed URL as a topic: ``moksha.feeds.<feed id>``
:mod:`.sources`       the feeds the stream polls; the feeds file
:mod:`.stream`        ``FeedStream``: the hub producer publishing new entries
:mod:`.processors`    post-processors (entry point ``moksha.feeds.post_processor``)
:mod:`.backoff`       per-feed backoff for failing feeds
:mod:`.widgets`       ``FeedWidget`` and ``LiveFeedWidget``
:mod:`.settings`      the feed configuration keys
:mod:`.errors`        ``FeedError``, ``FetchError``, ``NotAFeed``
====================  ==============================================================
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moksha.feeds.cache import CachedFeed, FeedCache
    from moksha.feeds.errors import FeedError, FetchError, NotAFeed
    from moksha.feeds.feed import Feed
    from moksha.feeds.naming import feed_id, feed_topic
    from moksha.feeds.parse import Entry
    from moksha.feeds.settings import FeedSettings
    from moksha.feeds.stream import FeedStream

__all__ = [
    "CachedFeed",
    "Entry",
    "Feed",
    "FeedCache",
    "FeedError",
    "FeedSettings",
    "FeedStream",
    "FetchError",
    "NotAFeed",
    "feed_id",
    "feed_topic",
]

# Imported on first use: `moksha` commands that never touch feeds should not pay for
# SQLAlchemy, feedparser and httpx at start-up.
_HOMES = {
    "CachedFeed": "cache",
    "FeedCache": "cache",
    "FeedError": "errors",
    "FetchError": "errors",
    "NotAFeed": "errors",
    "Feed": "feed",
    "feed_id": "naming",
    "feed_topic": "naming",
    "Entry": "parse",
    "FeedSettings": "settings",
    "FeedStream": "stream",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'moksha.feeds' has no attribute {name!r}")
    return getattr(importlib.import_module(f"moksha.feeds.{home}"), name)
