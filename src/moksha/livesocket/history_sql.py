"""History kept in a database (SQLite by default) so recovery works across hub restarts.

:class:`SqlHistory` writes behind: :meth:`~SqlHistory.append` assigns the id
and queues the row without touching the database, and a writer task the
history owns inserts the queue in one transaction every ``flush_interval``
seconds or ``flush_rows`` rows, pruning each topic to its size and age bounds
in the same transaction.  :meth:`~SqlHistory.since` writes the queue out first,
so it sees every event appended before it was called.

The database holds three tables, created when missing: the events, one
eviction marker per kept topic (the highest seq pruned), and a few values
(``epoch``, ``last_seq``, the store-wide marker for topics pruned whole, and
whether the store is open).  The epoch is kept across clean restarts; if the
last run did not close the store, queued events may have been lost after
clients saw their ids, so a new epoch begins and older ids read as unknown.

SQLAlchemy's blocking engine runs in worker threads (``asyncio.to_thread``);
every write happens under one lock, so writes never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Self

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from moksha.errors import MokshaError
from moksha.livesocket.history import Event, History, is_literal, new_epoch, split_event_id
from moksha.sql import database_error, store_engine
from moksha.topics import literal_prefix, matches

__all__ = ["SqlHistory"]

log = logging.getLogger(__name__)

_Row = tuple[int, str, float, str]  # seq, topic, stored at, payload

# SQLite only makes "INTEGER PRIMARY KEY" an alias of its fast rowid.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")
_SCHEMA = MetaData()
EVENTS = Table(
    "moksha_history_events",
    _SCHEMA,
    Column("seq", _SEQ, primary_key=True, autoincrement=False),
    Column("topic", String(512), nullable=False),
    Column("created", Float, nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_moksha_history_events_topic_seq", "topic", "seq"),
    Index("ix_moksha_history_events_created", "created"),
)
MARKERS = Table(
    "moksha_history_evicted",
    _SCHEMA,
    Column("topic", String(512), primary_key=True),
    Column("seq", _SEQ, nullable=False),
)
META = Table(
    "moksha_history_meta",
    _SCHEMA,
    Column("key", String(32), primary_key=True),
    Column("value", String(64), nullable=False),
)

# Keeps IN (...) lists under every database's limit on bound parameters.
_CHUNK = 500


class SqlHistory(History):
    """History in a SQL database, written behind in batches.

    Args:
        url: a SQLAlchemy URL; ``sqlite:///file.sqlite`` is relative to the
            working directory, ``sqlite:////abs/path.sqlite`` absolute.
        max_per_topic: events kept per topic.
        max_age: seconds an event is kept.
        clock: returns the time in seconds; tests inject their own.
        flush_interval: seconds an appended event may wait before it is written.
        flush_rows: queued events that trigger a write at once.  At 20 times
            that many (the database cannot keep up), the oldest queued events
            are dropped and count as evicted, so clients that missed them reload.

    Raises:
        ConfigError: the URL cannot be used (not a URL, no such driver, the
            SQLite file's directory does not exist).
        ValueError: a bound is not positive.
    """

    def __init__(
        self,
        url: str = "sqlite:///moksha-history.sqlite",
        max_per_topic: int = 100,
        max_age: float = 300.0,
        *,
        clock: Callable[[], float] = time.time,
        flush_interval: float = 0.1,
        flush_rows: int = 500,
    ) -> None:
        if max_per_topic < 1 or not max_age > 0 or not flush_interval > 0 or flush_rows < 1:
            raise ValueError("history bounds must be positive")
        self._engine = store_engine(
            url, key="moksha.livesocket.history.url", what="history database"
        )
        self._url = self._engine.url.render_as_string(hide_password=True)
        self._max_per_topic = max_per_topic
        self._max_age = max_age
        self._clock = clock
        self._flush_interval = flush_interval
        self._flush_rows = flush_rows
        self._max_pending = flush_rows * 20
        self._pending: deque[_Row] = deque()
        self._has_rows = asyncio.Event()
        self._full = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._state_lock = asyncio.Lock()  # opening and closing
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._epoch = ""
        self._base = 0  # the seq before this epoch's first event
        self._seq = 0
        self._evicted = 0  # store-wide marker: topics pruned whole, events never written
        self._evicted_saved = 0
        self._overflowing = False

    @property
    def epoch(self) -> str:
        """The epoch part of the ids this store issues (empty until it is opened)."""
        return self._epoch

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def append(self, topic: str, payload: str, key: str | None = None) -> str:
        """Store a message and give it the next event id (see :meth:`History.append`)."""
        if self._writer is None:
            await self._open()
        self._seq = seq = self._seq + 1
        pending = self._pending
        pending.append((seq, topic, self._clock(), payload))
        if len(pending) == 1:
            self._has_rows.set()
        elif len(pending) >= self._flush_rows:
            self._full.set()
            if len(pending) > self._max_pending:
                self._drop_oldest_pending()
        return f"{self._epoch}-{seq}"

    async def position(self) -> str:
        """The newest event id issued (see :meth:`History.position`)."""
        if self._writer is None:
            await self._open()
        return f"{self._epoch}-{self._seq}"

    async def since(self, pattern: str, last_id: str) -> tuple[list[Event], bool]:
        """The events after ``last_id`` on ``pattern`` (see :meth:`History.since`)."""
        if self._writer is None:
            await self._open()
        parsed = split_event_id(last_id)
        if parsed is None or parsed[0] != self._epoch or not self._base <= parsed[1] <= self._seq:
            return [], False
        last = parsed[1]
        await self._flush()
        complete = self._evicted <= last
        cutoff = self._clock() - self._max_age
        try:
            events, kept = await asyncio.to_thread(
                _read_since, self._engine, self._epoch, pattern, last, cutoff
            )
        except SQLAlchemyError as exc:
            log.warning(
                "history: cannot read %s (%s); clients will reload", self._url, database_error(exc)
            )
            return [], False
        return events, complete and kept

    async def recent(self, pattern: str, count: int, max_age: float | None = None) -> list[Event]:
        """The newest ``count`` events on ``pattern`` (see :meth:`History.recent`)."""
        if self._writer is None:
            await self._open()
        await self._flush()
        age = self._max_age if max_age is None else min(max_age, self._max_age)
        cutoff = self._clock() - age
        try:
            return await asyncio.to_thread(
                _read_recent, self._engine, self._epoch, pattern, count, cutoff
            )
        except SQLAlchemyError as exc:
            log.warning("history: cannot read %s (%s)", self._url, database_error(exc))
            return []

    async def aclose(self) -> None:
        """Write out the queued events, mark the store closed cleanly, release the engine."""
        async with self._state_lock:
            if self._closed:
                return
            self._closed = True
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.cancel()
                await asyncio.wait([writer])
                await self._flush()
                try:
                    await asyncio.to_thread(_close_store, self._engine, self._evicted)
                except SQLAlchemyError as exc:
                    log.warning(
                        "history: cannot close %s cleanly (%s)", self._url, database_error(exc)
                    )
            await asyncio.to_thread(self._engine.dispose)

    async def _open(self) -> None:
        async with self._state_lock:
            if self._writer is not None:
                return
            if self._closed:
                raise MokshaError(f"the history in {self._url} is closed.")
            try:
                opened = await asyncio.to_thread(_open_store, self._engine)
            except SQLAlchemyError as exc:
                raise MokshaError(
                    f"the history database {self._url} cannot be opened: {database_error(exc)}."
                ) from exc
            self._epoch, self._base, self._seq, self._evicted = opened
            self._evicted_saved = self._evicted
            self._writer = asyncio.create_task(self._write_behind(), name="moksha history writer")

    async def _write_behind(self) -> None:
        """Write the queue out when it has waited flush_interval or holds flush_rows."""
        while True:
            await self._has_rows.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval):
                    await self._full.wait()
            await self._flush()

    async def _flush(self) -> None:
        async with self._write_lock:
            rows = list(self._pending)
            self._pending.clear()
            self._has_rows.clear()
            self._full.clear()
            if not rows and self._evicted == self._evicted_saved:
                return
            job = asyncio.ensure_future(self._write(rows))
            try:
                await asyncio.shield(job)
            except asyncio.CancelledError:
                # A thread cannot be interrupted: keep the lock until its write is
                # done, so the next write (aclose's) never overlaps it.
                await job
                raise

    async def _write(self, rows: list[_Row]) -> None:
        evicted = self._evicted
        cutoff = self._clock() - self._max_age
        try:
            saved = await asyncio.to_thread(
                _write_rows, self._engine, rows, evicted, self._max_per_topic, cutoff
            )
        except Exception as exc:  # whatever went wrong, the writer must live on
            log.warning(
                "history: %d events could not be written to %s (%s); "
                "clients that missed them will reload",
                len(rows),
                self._url,
                database_error(exc),
            )
            if rows:
                self._evicted = max(self._evicted, rows[-1][0])
            return
        self._evicted = max(self._evicted, saved)
        self._evicted_saved = saved
        self._overflowing = False

    def _drop_oldest_pending(self) -> None:
        self._evicted = max(self._evicted, self._pending.popleft()[0])
        if not self._overflowing:
            self._overflowing = True
            log.warning(
                "history: %s cannot keep up; dropping the oldest unwritten events", self._url
            )


def _chunks(items: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == _CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _set_meta(conn: Connection, values: dict[str, str]) -> None:
    conn.execute(delete(META).where(META.c.key.in_(list(values))))
    conn.execute(insert(META), [{"key": k, "value": v} for k, v in values.items()])


def _open_store(engine: Engine) -> tuple[str, int, int, int]:
    """Create missing tables; return (epoch, base, last seq, store-wide marker)."""
    _SCHEMA.create_all(engine)
    with engine.begin() as conn:
        meta = dict(conn.execute(select(META.c.key, META.c.value)).all())
        stored = conn.scalar(select(func.max(EVENTS.c.seq))) or 0
        last = max(int(meta.get("last_seq", "0")), stored)
        epoch, base = meta.get("epoch"), int(meta.get("base", "0"))
        if epoch is None or meta.get("open") == "1":
            epoch, base = new_epoch(), last
        _set_meta(conn, {"epoch": epoch, "base": str(base), "last_seq": str(last), "open": "1"})
    return epoch, base, last, int(meta.get("evicted", "0"))


def _close_store(engine: Engine, evicted: int) -> None:
    with engine.begin() as conn:
        _set_meta(conn, {"open": "0", "evicted": str(evicted)})


def _write_rows(
    engine: Engine, rows: list[_Row], evicted: int, max_per_topic: int, cutoff: float
) -> int:
    """Insert rows and prune, in one transaction; return the store-wide marker saved."""
    with engine.begin() as conn:
        values = {}
        if rows:
            conn.execute(
                insert(EVENTS),
                [{"seq": s, "topic": t, "created": c, "payload": p} for s, t, c, p in rows],
            )
            _prune_size(conn, {row[1] for row in rows}, max_per_topic)
            values["last_seq"] = str(rows[-1][0])
        evicted = max(evicted, _prune_age(conn, cutoff))
        values["evicted"] = str(evicted)
        _set_meta(conn, values)
    return evicted


def _prune_size(conn: Connection, topics: Iterable[str], keep: int) -> None:
    for chunk in _chunks(topics):
        rank = func.row_number().over(partition_by=EVENTS.c.topic, order_by=EVENTS.c.seq.desc())
        ranked = (
            select(EVENTS.c.topic, EVENTS.c.seq, rank.label("rank"))
            .where(EVENTS.c.topic.in_(chunk))
            .subquery()
        )
        over = (
            select(ranked.c.topic, func.max(ranked.c.seq))
            .where(ranked.c.rank > keep)
            .group_by(ranked.c.topic)
        )
        cut = dict(conn.execute(over).all())
        if cut:
            _mark(conn, cut)
            doomed = EVENTS.c.topic == bindparam("t"), EVENTS.c.seq <= bindparam("s")
            conn.execute(delete(EVENTS).where(*doomed), [{"t": t, "s": s} for t, s in cut.items()])


def _prune_age(conn: Connection, cutoff: float) -> int:
    """Delete events older than cutoff; return the newest seq of the topics left empty."""
    old = EVENTS.c.created < cutoff
    aged = select(EVENTS.c.topic, func.max(EVENTS.c.seq)).where(old).group_by(EVENTS.c.topic)
    cut = dict(conn.execute(aged).all())
    if not cut:
        return 0
    conn.execute(delete(EVENTS).where(old))
    _mark(conn, cut)
    # A topic with nothing left folds its marker into the store-wide one, so there
    # are markers only for topics still kept.
    empty = ~exists().where(EVENTS.c.topic == MARKERS.c.topic)
    gone = dict(conn.execute(select(MARKERS.c.topic, MARKERS.c.seq).where(empty)).all())
    for chunk in _chunks(gone):
        conn.execute(delete(MARKERS).where(MARKERS.c.topic.in_(chunk)))
    return max(gone.values(), default=0)


def _mark(conn: Connection, cut: dict[str, int]) -> None:
    """Raise each topic's eviction marker to the seq given for it."""
    for chunk in _chunks(cut):
        query = select(MARKERS.c.topic, MARKERS.c.seq).where(MARKERS.c.topic.in_(chunk))
        known = dict(conn.execute(query).all())
        raised = [{"t": t, "s": cut[t]} for t in chunk if t in known and cut[t] > known[t]]
        added = [{"topic": t, "seq": cut[t]} for t in chunk if t not in known]
        if raised:
            stmt = update(MARKERS).where(MARKERS.c.topic == bindparam("t"))
            conn.execute(stmt.values(seq=bindparam("s")), raised)
        if added:
            conn.execute(insert(MARKERS), added)


def _read_since(
    engine: Engine, epoch: str, pattern: str, last: int, cutoff: float
) -> tuple[list[Event], bool]:
    query = select(EVENTS.c.seq, EVENTS.c.topic, EVENTS.c.created, EVENTS.c.payload)
    query = query.where(EVENTS.c.seq > last).order_by(EVENTS.c.seq)
    if is_literal(pattern):
        query = query.where(EVENTS.c.topic == pattern)
    elif prefix := literal_prefix(pattern):
        query = query.where(EVENTS.c.topic.startswith(prefix, autoescape=True))
    events: list[Event] = []
    complete = True
    with engine.connect() as conn:
        for seq, topic, created, payload in conn.execute(query):
            if not matches(pattern, topic):
                continue  # the SQL filter is only a prefix, and LIKE may ignore case
            if created < cutoff:
                complete = False  # too old to replay: as good as evicted, pruned at next write
            else:
                events.append(Event(f"{epoch}-{seq}", topic, payload, created))
        evicted = conn.execute(select(MARKERS.c.topic).where(MARKERS.c.seq > last)).scalars()
        if any(matches(pattern, topic) for topic in evicted):
            complete = False
    return events, complete


def _read_recent(
    engine: Engine, epoch: str, pattern: str, count: int, cutoff: float
) -> list[Event]:
    query = select(EVENTS.c.seq, EVENTS.c.topic, EVENTS.c.created, EVENTS.c.payload)
    query = query.where(EVENTS.c.created >= cutoff).order_by(EVENTS.c.seq.desc())
    if is_literal(pattern):
        query = query.where(EVENTS.c.topic == pattern)
    elif prefix := literal_prefix(pattern):
        query = query.where(EVENTS.c.topic.startswith(prefix, autoescape=True))
    events: list[Event] = []
    with engine.connect() as conn:
        for seq, topic, created, payload in conn.execute(query):
            if len(events) == count:
                break
            if matches(pattern, topic):  # the SQL filter is only a prefix
                events.append(Event(f"{epoch}-{seq}", topic, payload, created))
    events.reverse()
    return events
