"""``Feed(url)``: a feed fetched, parsed and cached, usable anywhere (no hub needed).

From plain Python::

    from moksha.feeds import Feed

    with Feed("https://example.org/feed.xml") as feed:
        for entry in feed:                       # or feed.entries(limit=10)
            print(entry["published"], entry["title"], entry["link"])
        print(feed.num_entries())

From asyncio, the same object::

    async with Feed(url, cache="sqlite:///var/lib/moksha/feeds.sqlite") as feed:
        entries = await feed.aentries()
        async for entry in feed:
            ...

A feed is fetched when its cached copy is older than ``feed.max_age``
seconds (300): with a conditional GET, so an unchanged feed costs a ``304``
and no parsing.  When a fetch fails and a copy is cached, the copy is used
and the failure logged; with nothing cached, the
:class:`~moksha.feeds.errors.FeedError` is raised.

The async methods are the implementation; the sync ones run them on an event
loop of their own (in a worker thread when the calling thread already runs
one, which then waits: in async code, use the ``a`` methods).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from moksha.feeds.cache import CachedFeed, FeedCache
from moksha.feeds.errors import FeedError, FetchError
from moksha.feeds.fetch import Fetcher, check_url
from moksha.feeds.parse import Entry, ParsedFeed, parse_feed
from moksha.feeds.settings import FeedSettings
from moksha.hub.loop_thread import new_event_loop

__all__ = ["Feed", "fetch_feed", "update_feed"]

log = logging.getLogger("moksha.feeds")

T = TypeVar("T")


async def update_feed(
    url: str, *, cache: FeedCache, fetcher: Fetcher, cached: CachedFeed | None = None
) -> tuple[CachedFeed, bool]:
    """Fetch a feed (conditionally, when a copy is cached), parse it and cache it.

    Args:
        url: the feed's URL.
        cache: where the copy is kept.
        fetcher: fetches the document.
        cached: the copy in ``cache``, when the caller already read it.

    Returns:
        The feed as now cached, and whether a new document was fetched and
        parsed (False: the server answered 304).

    Raises:
        FeedError: the fetch failed, the document is not a feed, or the cache
            cannot be used.
    """
    if cached is None:
        cached = await cache.get(url)
    result = await fetcher.fetch(
        url,
        etag=cached.etag if cached else None,
        last_modified=cached.last_modified if cached else None,
    )
    now = time.time()
    if result.not_modified:
        if cached is None:
            raise FetchError(f"{url} answered 304 Not Modified to a plain GET.", url=url)
        revalidated = dataclasses.replace(
            cached,
            fetched_at=now,
            etag=result.etag or cached.etag,
            last_modified=result.last_modified or cached.last_modified,
        )
        await cache.put(revalidated)
        return revalidated, False
    # Parsing a large feed takes a while: not on the event loop.
    parsed = await asyncio.to_thread(
        parse_feed,
        result.content,
        url,
        final_url=result.final_url,
        content_type=result.content_type,
    )
    fresh = CachedFeed(
        url=url,
        title=parsed.title,
        link=parsed.link,
        entries=parsed.entries,
        etag=result.etag,
        last_modified=result.last_modified,
        fetched_at=now,
    )
    await cache.put(fresh)
    return fresh, True


async def fetch_feed(
    url: str,
    *,
    timeout: float = 30.0,
    max_bytes: int = 10 * 2**20,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ParsedFeed:
    """Fetch and parse a feed once, without the cache: to check a URL before using it.

    Args:
        url: the feed's URL.
        timeout: seconds the fetch may take.
        max_bytes: the largest document accepted.
        transport: an httpx transport to fetch through instead of the network.

    Returns:
        The parsed feed.

    Raises:
        FeedError: the fetch failed, or the document is not a feed
            (:class:`~moksha.feeds.errors.NotAFeed`).
    """
    async with Fetcher(timeout=timeout, max_bytes=max_bytes, transport=transport) as fetcher:
        result = await fetcher.fetch(url)
    return await asyncio.to_thread(
        parse_feed,
        result.content,
        result.url,
        final_url=result.final_url,
        content_type=result.content_type,
    )


class Feed:
    """An RSS or Atom feed: fetched when stale, parsed, cached.

    Args:
        url: the feed's ``http``/``https`` URL.
        config: read for ``feed_cache``, ``feed.max_age``, ``feed.timeout`` and
            ``feed.max_bytes`` (a :class:`~moksha.config.Config` or a dict);
            None: the defaults.
        cache: a :class:`FeedCache` to share, or a database URL; None: the
            ``feed_cache`` of ``config`` (``sqlite:///moksha-feeds.sqlite``).
        max_age: seconds a cached copy is used without asking the server;
            None: ``feed.max_age``.  0 asks every time.
        transport: an httpx transport to fetch through instead of the network.

    Raises:
        FetchError: ``url`` is not an ``http``/``https`` URL.
        ConfigError: a feed setting or the cache URL is wrong.
    """

    def __init__(
        self,
        url: str,
        *,
        config: Mapping[str, Any] | None = None,
        cache: FeedCache | str | None = None,
        max_age: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = check_url(url)
        settings = FeedSettings.from_config(config)
        self.max_age = settings.max_age if max_age is None else max_age
        self._settings = settings
        self._transport = transport
        self._owns_cache = not isinstance(cache, FeedCache)
        if isinstance(cache, FeedCache):
            self.cache = cache
        else:
            self.cache = FeedCache(cache or settings.cache_url)

    def __repr__(self) -> str:
        return f"Feed({self.url!r})"

    # -- async: the implementation ---------------------------------------

    async def aload(self, *, force: bool = False) -> CachedFeed:
        """The feed: the cached copy while fresh, else fetched (conditionally).

        Args:
            force: ask the server even when the cached copy is fresh.

        Returns:
            The feed with its title, link and entries.

        Raises:
            FeedError: it cannot be fetched or parsed and nothing is cached.
        """
        cached = await self.cache.get(self.url)
        if cached is not None and not force and cached.age() < self.max_age:
            return cached
        try:
            async with self._fetcher() as fetcher:
                feed, _ = await update_feed(
                    self.url, cache=self.cache, fetcher=fetcher, cached=cached
                )
        except FeedError as exc:
            if cached is None:
                raise
            log.warning("%s Showing the copy fetched %.0f s ago.", exc, cached.age())
            return cached
        return feed

    async def aentries(self, limit: int | None = None) -> list[Entry]:
        """The entries, in the feed's order (usually newest first), at most ``limit``.

        Raises:
            FeedError: as :meth:`aload`.
        """
        entries = (await self.aload()).entries
        return list(entries if limit is None else entries[:limit])

    async def anum_entries(self) -> int:
        """How many entries the feed holds.

        Raises:
            FeedError: as :meth:`aload`.
        """
        return len((await self.aload()).entries)

    async def __aiter__(self) -> AsyncIterator[Entry]:
        for entry in await self.aentries():
            yield entry

    async def aclose(self) -> None:
        """Release the cache's connections, when the feed opened the cache itself."""
        if self._owns_cache:
            await self.cache.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- sync: the same, on an event loop of its own ------------------------

    def load(self, *, force: bool = False) -> CachedFeed:
        """:meth:`aload`, from sync code."""
        return _run_sync(lambda: self.aload(force=force))

    def entries(self, limit: int | None = None) -> list[Entry]:
        """:meth:`aentries`, from sync code."""
        return _run_sync(lambda: self.aentries(limit))

    def num_entries(self) -> int:
        """:meth:`anum_entries`, from sync code."""
        return _run_sync(self.anum_entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries())

    def iterentries(self, limit: int | None = None) -> Iterator[Entry]:
        """The entries, as the original Moksha's ``Feed.iterentries`` gave them."""
        return iter(self.entries(limit))

    def get_entries(self) -> list[Entry]:
        """All entries, as the original Moksha's ``Feed.get_entries``."""
        return self.entries()

    def close(self) -> None:
        """Release the cache's connections, when the feed opened the cache itself."""
        if self._owns_cache:
            self.cache.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _fetcher(self) -> Fetcher:
        settings = self._settings
        return Fetcher(
            timeout=settings.timeout, max_bytes=settings.max_bytes, transport=self._transport
        )


def _run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``make()`` returns to completion, from sync code.

    A thread already running an event loop (an async web handler rendering a
    sync widget) cannot run another: the coroutine then runs in a worker
    thread, and this thread waits for it.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(make)
    with ThreadPoolExecutor(1, thread_name_prefix="moksha-feed") as pool:
        return pool.submit(_run_here, make).result()


def _run_here(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(make())
