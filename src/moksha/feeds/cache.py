"""The feed cache: parsed feeds and the entries already published, in a SQL database.

Two tables, created when missing, in the database ``feed_cache`` names
(SQLite by default):

``moksha_feeds``
    one row per feed URL: its title, link and entries (JSON), the validators
    for the next conditional GET (``ETag``, ``Last-Modified``) and when it
    was last fetched or revalidated.  :class:`~moksha.feeds.Feed` answers
    from it while it is younger than ``feed.max_age``.
``moksha_feed_seen``
    the ids of the entries the feed stream has published, per feed, so an
    entry goes out once even across hub restarts.  Each id is hashed
    (SHA-256), so any id or link fits the key.  An id is kept while its
    entry is still in the feed and :data:`SEEN_RETENTION` seconds after
    that, which bounds the table.

SQLAlchemy's blocking engine runs in worker threads (``asyncio.to_thread``),
as for the live socket's history; SQLite runs in WAL mode so readers (widgets)
never wait for the stream's writes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Index,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from moksha.feeds.errors import FeedError
from moksha.feeds.parse import Entry
from moksha.feeds.settings import DEFAULT_CACHE_URL
from moksha.sql import database_error, store_engine

__all__ = ["SEEN_RETENTION", "CachedFeed", "FeedCache"]

T = TypeVar("T")

SEEN_RETENTION = 30 * 24 * 3600.0
"""Seconds an entry id is remembered after its entry left the feed."""

_SCHEMA = MetaData()
FEEDS = Table(
    "moksha_feeds",
    _SCHEMA,
    Column("key", String(64), primary_key=True),
    Column("url", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("link", Text),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("fetched_at", Float, nullable=False),
    Column("entries", Text, nullable=False),
)
SEEN = Table(
    "moksha_feed_seen",
    _SCHEMA,
    Column("feed", String(64), primary_key=True),
    Column("entry", String(64), primary_key=True),
    Column("last_seen", Float, nullable=False),
    Index("ix_moksha_feed_seen_last_seen", "feed", "last_seen"),
)

# Keeps IN (...) lists under every database's limit on bound parameters.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class CachedFeed:
    """A feed as the cache holds it.

    Attributes:
        url: the feed's URL.
        title: its title.
        link: the site it belongs to, if it says.
        entries: its entries, in document order.
        etag: the ``ETag`` of the response it came from.
        last_modified: the ``Last-Modified`` of that response.
        fetched_at: when it was last fetched or revalidated (a 304), in
            seconds since the epoch.
    """

    url: str
    title: str
    link: str | None
    entries: tuple[Entry, ...]
    etag: str | None
    last_modified: str | None
    fetched_at: float

    def age(self, now: float | None = None) -> float:
        """Seconds since it was last fetched or revalidated."""
        return (time.time() if now is None else now) - self.fetched_at


class FeedCache:
    """Parsed feeds and published entry ids, in a SQL database.

    Args:
        url: a SQLAlchemy URL; ``sqlite:///feeds.sqlite`` is relative to the
            working directory, ``sqlite:////abs/feeds.sqlite`` absolute,
            ``sqlite://`` in memory (for one process).

    Raises:
        ConfigError: the URL cannot be used (not a URL, no such driver, the
            SQLite file's directory does not exist).
    """

    def __init__(self, url: str = DEFAULT_CACHE_URL) -> None:
        self._engine = store_engine(url, key="feed_cache", what="feed cache")
        self.url = self._engine.url.render_as_string(hide_password=True)
        self._ready = False
        # A thread lock: the sync facade of Feed runs each call on an event loop of its own.
        self._schema_lock = threading.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def close(self) -> None:
        """Release the database connections (blocking)."""
        self._engine.dispose()

    async def aclose(self) -> None:
        """Release the database connections."""
        await asyncio.to_thread(self._engine.dispose)

    async def get(self, url: str) -> CachedFeed | None:
        """The cached copy of the feed at ``url``, or None.

        Raises:
            FeedError: the database cannot be read.
        """
        return await self._run(url, _get, url)

    async def put(self, feed: CachedFeed) -> None:
        """Store (or replace) the cached copy of a feed.

        Raises:
            FeedError: the database cannot be written.
        """
        await self._run(feed.url, _put, feed)

    async def unseen(self, url: str, ids: Iterable[str]) -> set[str]:
        """Those of ``ids`` not yet remembered for the feed at ``url``.

        Raises:
            FeedError: the database cannot be read.
        """
        return await self._run(url, _unseen, url, list(ids))

    async def remember(self, url: str, ids: Iterable[str], now: float | None = None) -> None:
        """Remember ``ids`` as published for the feed at ``url``, as of ``now``.

        Ids remembered before and not seen for :data:`SEEN_RETENTION` seconds
        are forgotten in the same transaction.

        Raises:
            FeedError: the database cannot be written.
        """
        moment = time.time() if now is None else now
        await self._run(url, _remember, url, list(ids), moment)

    def _create_tables(self) -> None:
        """Create the tables when missing (once per cache; blocking)."""
        with self._schema_lock:
            if self._ready:
                return
            try:
                _SCHEMA.create_all(self._engine)
            except SQLAlchemyError:
                # Another process (a hub, a widget) created them between check and create.
                _SCHEMA.create_all(self._engine)
            self._ready = True

    async def _run(self, url: str, job: Callable[..., T], *args: Any) -> T:
        try:
            if not self._ready:
                await asyncio.to_thread(self._create_tables)
            return await asyncio.to_thread(job, self._engine, *args)
        except SQLAlchemyError as exc:
            raise FeedError(
                f"the feed cache {self.url} cannot be used for {url}: {database_error(exc)}.",
                url=url,
            ) from exc


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _get(engine: Engine, url: str) -> CachedFeed | None:
    with engine.connect() as conn:
        row = conn.execute(select(FEEDS).where(FEEDS.c.key == _key(url))).mappings().first()
    if row is None:
        return None
    entries = tuple(json.loads(row["entries"]))
    return CachedFeed(
        url=row["url"],
        title=row["title"],
        link=row["link"],
        entries=entries,
        etag=row["etag"],
        last_modified=row["last_modified"],
        fetched_at=row["fetched_at"],
    )


def _put(engine: Engine, feed: CachedFeed) -> None:
    values = {
        "url": feed.url,
        "title": feed.title,
        "link": feed.link,
        "etag": feed.etag,
        "last_modified": feed.last_modified,
        "fetched_at": feed.fetched_at,
        "entries": json.dumps(list(feed.entries), ensure_ascii=False),
    }
    key = _key(feed.url)
    with engine.begin() as conn:
        changed = conn.execute(update(FEEDS).where(FEEDS.c.key == key).values(values)).rowcount
        if not changed:
            conn.execute(insert(FEEDS).values(key=key, **values))


def _unseen(engine: Engine, url: str, ids: list[str]) -> set[str]:
    by_key = {_key(entry_id): entry_id for entry_id in ids}
    feed = _key(url)
    known: set[str] = set()
    with engine.connect() as conn:
        for chunk in _chunks(list(by_key)):
            query = select(SEEN.c.entry).where(SEEN.c.feed == feed, SEEN.c.entry.in_(chunk))
            known.update(conn.execute(query).scalars())
    return {entry_id for key, entry_id in by_key.items() if key not in known}


def _remember(engine: Engine, url: str, ids: list[str], now: float) -> None:
    feed = _key(url)
    keys = list(dict.fromkeys(_key(entry_id) for entry_id in ids))
    with engine.begin() as conn:
        known: set[str] = set()
        for chunk in _chunks(keys):
            query = select(SEEN.c.entry).where(SEEN.c.feed == feed, SEEN.c.entry.in_(chunk))
            known.update(conn.execute(query).scalars())
        old = [{"e": key} for key in keys if key in known]
        new = [{"feed": feed, "entry": key, "last_seen": now} for key in keys if key not in known]
        if old:
            refresh = update(SEEN).where(SEEN.c.feed == feed, SEEN.c.entry == bindparam("e"))
            conn.execute(refresh.values(last_seen=now), old)
        if new:
            conn.execute(insert(SEEN), new)
        # Entries still in the feed were just refreshed, so this forgets only gone ones.
        conn.execute(
            delete(SEEN).where(SEEN.c.feed == feed, SEEN.c.last_seen < now - SEEN_RETENTION)
        )
