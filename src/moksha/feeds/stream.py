"""The feed stream: a producer that polls feeds and publishes each new entry once.

Turn it on in the hub's configuration; it is off by default, so installing
Moksha polls nothing::

    moksha.feedaggregator = true
    feed.urls = https://example.org/news.atom, https://blog.example.org/rss.xml
    feed.poll_frequency = 300        ; seconds between polls
    feed.deferred_groups = 10        ; feeds fetched at once, at most
    feed_cache = sqlite:///%(here)s/feeds.sqlite

More feeds come from the feeds file (``moksha feeds add URL``) and from feed
widgets (see :mod:`moksha.feeds.sources`).

**Topics.** Each new entry is published on ``moksha.feeds.<feed id>``, where
the feed id is one topic word made from the URL (host, port, path and query,
lower-cased, every run of characters outside ``[a-z0-9_-]`` turned into
``_``, cut to 48 characters, then ``-`` and 8 hex digits of the URL's
SHA-256; see :mod:`moksha.feeds.naming`)::

    https://blog.example.org/feed.xml     -> moksha.feeds.blog_example_org_feed_xml-4c0adcbe
    http://127.0.0.1:8000/rss?tag=python  -> moksha.feeds.127_0_0_1_8000_rss_tag_python-2022d118

so ``moksha.feeds.#`` (or ``moksha.feeds.*``) follows every feed.

**Bodies.** ``title``, ``link``, ``published`` (ISO 8601 UTC, or null),
``summary`` (sanitized HTML), ``id`` (the entry's id, else its link),
``feed`` (the feed's URL) and ``feed_title`` — after the post-processors of
the ``moksha.feeds.post_processor`` entry point (:mod:`moksha.feeds.processors`).

**Once each.** Every poll fetches each feed with a conditional GET (an
unchanged feed costs a ``304``), and publishes, oldest first, the entries
whose ids the feed cache has not seen; their ids are then remembered in the
cache's database, so a restarted hub does not publish them again.  The
first poll of a feed publishes all its current entries.

**Failures.** A feed that fails (unreachable, too slow, too large, not a
feed) is logged with its URL and tried again with backoff (the poll
interval, doubling up to ``feed.max_backoff``); the other feeds go on.  A
poll ends when its last feed is done, so a slow server delays the next poll
by ``feed.timeout`` at most.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from moksha.feeds.backoff import Backoff
from moksha.feeds.cache import CachedFeed, FeedCache
from moksha.feeds.errors import FeedError
from moksha.feeds.feed import update_feed
from moksha.feeds.fetch import Fetcher
from moksha.feeds.naming import feed_topic
from moksha.feeds.processors import PostProcessor, apply_post_processors, load_post_processors
from moksha.feeds.settings import FeedSettings
from moksha.feeds.sources import FeedSource, feed_sources
from moksha.hub.api.producer import PollingProducer

if TYPE_CHECKING:
    from moksha.hub.hub import MokshaHub

__all__ = ["FeedStream"]

log = logging.getLogger("moksha.feeds")


class FeedStream(PollingProducer):
    """Polls the configured feeds every ``feed.poll_frequency`` seconds; publishes new entries.

    Installed on the ``moksha.stream`` entry point, so every hub loads it;
    with ``moksha.feedaggregator`` false (the default) it stays inactive: its
    polling loop ends at once and it opens nothing.

    Attributes:
        post_processors: the post-processors to use; None (the default)
            loads those of the ``moksha.feeds.post_processor`` entry point.
            A subclass may set a list instead.
        active: whether it polls.
        settings: the feed settings read from the hub's configuration.
        published: how many entries it has published.
    """

    frequency = 300.0
    now = True
    post_processors: ClassVar[Sequence[PostProcessor] | None] = None

    def __init__(self, hub: MokshaHub) -> None:
        super().__init__(hub)
        self.settings = FeedSettings.from_config(hub.config)
        self.active = self.settings.enabled
        self.published = 0
        self._feeds = 0
        self.cache: FeedCache | None = None
        self.processors: list[PostProcessor] = []
        # The first retry at the next poll, then twice as long each time, up to feed.max_backoff.
        self.backoff = Backoff(
            self.settings.poll_frequency,
            max(self.settings.max_backoff, self.settings.poll_frequency),
        )
        if not self.active:
            # The hub's polling loop checks `die` before every poll: it ends at once.
            self.die = True
            log.debug("feed stream off (moksha.feedaggregator is false)")
            return
        self.frequency = self.settings.poll_frequency
        self.cache = FeedCache(self.settings.cache_url)
        if self.post_processors is not None:
            self.processors = list(self.post_processors)
        else:
            self.processors = load_post_processors()
        log.info("feed stream on: polling every %g s into %s", self.frequency, self.cache.url)

    @classmethod
    def enabled(cls, config: Mapping[str, Any]) -> bool:
        """Whether a hub with ``config`` should run the stream (``moksha.feedaggregator``).

        Raises:
            ConfigError: a feed setting is not valid.
        """
        return FeedSettings.from_config(config).enabled

    async def poll(self) -> None:
        """Fetch every due feed, at most ``feed.deferred_groups`` at once; publish new entries.

        A feed's failure is logged and backed off here; it never ends the poll.

        Raises:
            ConfigError: the feeds file cannot be read.
        """
        if not self.active:
            return
        started = time.monotonic()
        sources = await asyncio.to_thread(feed_sources, self.settings, self.hub.config)
        self._feeds = len(sources)
        due = [source for source in sources if self.backoff.ready(source.url)]
        limit = asyncio.Semaphore(self.settings.deferred_groups)
        fetcher = Fetcher(timeout=self.settings.timeout, max_bytes=self.settings.max_bytes)
        async with fetcher, asyncio.TaskGroup() as group:
            for source in due:
                group.create_task(self._poll_feed(source, fetcher, limit, started))

    async def _poll_feed(
        self, source: FeedSource, fetcher: Fetcher, limit: asyncio.Semaphore, started: float
    ) -> None:
        """Fetch one feed and publish its new entries; log and back off on failure."""
        assert self.cache is not None
        url = source.url
        try:
            async with limit:
                feed, _ = await update_feed(url, cache=self.cache, fetcher=fetcher)
            await self._publish_new(feed)
        except Exception as exc:
            delay = self.backoff.failed(url, since=started)
            failures = self.backoff.failures(url)
            # A FeedError's message names the feed's URL; anything else gets it here.
            reason = str(exc) if isinstance(exc, FeedError) else f"feed {url}: {exc!r}."
            log.warning(
                "%s Trying again in %.3g s%s (the feed is listed in %s).",
                reason,
                delay,
                f", after {failures} failures in a row" if failures > 1 else "",
                source.origin,
                exc_info=not isinstance(exc, FeedError),
            )
            return
        if failures := self.backoff.succeeded(url):
            log.info("feed %s works again after %d failures", url, failures)

    async def _publish_new(self, feed: CachedFeed) -> None:
        """Publish the entries not seen before, oldest first; remember them as seen.

        Entries a post-processor failed on are not remembered, so the next
        poll tries them again.

        Raises:
            MokshaError: the hub cannot publish (what was published is remembered).
        """
        assert self.cache is not None
        url = feed.url
        ids = [entry["id"] for entry in feed.entries]
        new = await self.cache.unseen(url, ids)
        handled = set(ids) - new
        topic = feed_topic(url)
        try:
            # Feeds list the newest entry first; a reader wants them in the order they came.
            for entry in reversed(feed.entries):
                if entry["id"] in handled:
                    continue
                try:
                    body = await apply_post_processors(self.processors, dict(entry))
                except Exception:
                    log.exception(
                        "feed %s: a post-processor failed on entry %s; it is tried again "
                        "at the next poll",
                        url,
                        entry["id"],
                    )
                    continue
                if body is not None:
                    await self.hub.publish(topic, body)
                    self.published += 1
                handled.add(entry["id"])
        finally:
            await self.cache.remember(url, handled)

    def stop(self) -> None:
        """Stop polling and release the feed cache's connections."""
        super().stop()
        if self.cache is not None:
            self.cache.close()

    def __json__(self) -> dict[str, Any]:
        """The producer's report, plus whether it is on, its feeds and the failing ones."""
        data = super().__json__()
        data.update(
            {
                "active": self.active,
                "feeds": self._feeds,
                "failing": self.backoff.failing(),
                "published": self.published,
            }
        )
        return data
