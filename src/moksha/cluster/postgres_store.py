"""The cluster store on PostgreSQL (``moksha.cluster.url = postgresql://user:pass@host/db``).

Tables (created when missing), each named ``<prefix>_cluster_...``:

===============  ============================================================
``state``        the epoch and the offset of the topics dropped whole
``events``       the history: offset (from the sequence ``<prefix>_cluster_offset``),
                 topic, time, payload, and the message id (unique), so every node
                 asking with the same id gets the same offset
``evicted``      per topic, the highest offset evicted by size or age
``nodes``        heartbeats: node, what it reported, when it expires
``locks``        leader leases: name, holder, when it expires
===============  ============================================================

Leader locks are leases in a table, renewed by their holder, rather than
advisory locks: an advisory lock belongs to one connection, so a leader whose
machine vanished keeps it until PostgreSQL notices the dead connection (TCP
timeouts, minutes); a lease expires after the TTL like the Redis lock does.
Expiry times are read from PostgreSQL's clock, so the nodes' clocks need not agree.

SQLAlchemy's asyncio engine over psycopg 3 (``pip install 'moksha[postgresql]'``).
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from moksha.cluster.store import Bounds, ClusterError, ClusterStore, StoredEvent
from moksha.errors import ConfigError
from moksha.topics import literal_prefix, matches

__all__ = ["PostgresStore"]

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")
_NOW = "extract(epoch from clock_timestamp())"
_AGE_EVICTION_EVERY = 1.0  # seconds: reads leave out what is too old in between

_SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS {p}_offset;
CREATE TABLE IF NOT EXISTS {p}_state (name text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS {p}_events (
    "offset" bigint PRIMARY KEY, topic text NOT NULL, created double precision NOT NULL,
    payload text NOT NULL, message_key text UNIQUE);
CREATE INDEX IF NOT EXISTS {p}_events_topic ON {p}_events (topic, "offset");
CREATE INDEX IF NOT EXISTS {p}_events_created ON {p}_events (created);
CREATE TABLE IF NOT EXISTS {p}_evicted (topic text PRIMARY KEY, "offset" bigint NOT NULL);
CREATE TABLE IF NOT EXISTS {p}_nodes (
    node text PRIMARY KEY, info text NOT NULL, expires double precision NOT NULL);
CREATE TABLE IF NOT EXISTS {p}_locks (
    name text PRIMARY KEY, holder text NOT NULL, expires double precision NOT NULL)
"""

_EVICT = """
WITH gone AS (DELETE FROM {p}_events WHERE {where} RETURNING topic, "offset")
INSERT INTO {p}_evicted (topic, "offset") SELECT topic, max("offset") FROM gone GROUP BY topic
ON CONFLICT (topic) DO UPDATE SET "offset" = GREATEST({p}_evicted."offset", excluded."offset")
"""


class PostgresStore(ClusterStore):
    """A :class:`~moksha.cluster.store.ClusterStore` in a PostgreSQL database.

    Args:
        url: ``postgresql://user:password@host:port/database``.
        prefix: the start of the table names (letters, digits, ``_``).
        bounds: how much history to keep (per topic and in age; the topic
            count is not bounded here: old topics go with their events' age).

    Raises:
        ConfigError: the prefix is not a table name, or psycopg is not installed.
    """

    def __init__(self, url: str, prefix: str = "moksha", bounds: Bounds | None = None) -> None:
        if not _NAME.fullmatch(prefix):
            raise ConfigError(
                f"a PostgreSQL cluster store needs a prefix of lower-case letters, digits "
                f"and _ (at most 40), not {prefix!r}",
                key="moksha.cluster.prefix",
            )
        parsed = make_url(url).set(drivername="postgresql+psycopg")
        self._shown = parsed.render_as_string(hide_password=True)
        try:
            self._engine: AsyncEngine = create_async_engine(parsed, pool_pre_ping=True)
        except ImportError:
            raise ConfigError(
                "a PostgreSQL cluster store needs psycopg: pip install 'moksha[postgresql]'",
                key="moksha.cluster.url",
            ) from None
        self._p = f"{prefix}_cluster"
        self.bounds = bounds or Bounds()
        self._epoch: str | None = None
        self._age_evicted = 0.0  # when this store last deleted what is too old

    def _sql(self, statement: str) -> Any:
        return text(statement.replace("{p}", self._p))

    def _failed(self, exc: BaseException) -> ClusterError:
        return ClusterError(
            f"the cluster store (PostgreSQL at {self._shown}) failed: {exc}; check that it "
            "runs and that moksha.cluster.url names it"
        )

    async def _run(self, statement: str, **params: Any) -> list[Any]:
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(self._sql(statement), params)
                return list(result.all()) if result.returns_rows else []
        except (SQLAlchemyError, OSError) as exc:
            raise self._failed(exc) from exc

    async def open(self) -> None:
        """Create the tables when missing and fix the epoch."""
        try:
            async with self._engine.begin() as conn:
                # Nodes starting together must not race to create the same tables.
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": self._p}
                )
                for statement in _SCHEMA.split(";"):
                    await conn.execute(self._sql(statement))
                await conn.execute(
                    self._sql("INSERT INTO {p}_state VALUES ('epoch', :e) ON CONFLICT DO NOTHING"),
                    {"e": secrets.token_hex(4)},
                )
                found = await conn.execute(
                    self._sql("SELECT value FROM {p}_state WHERE name='epoch'")
                )
                self._epoch = found.scalar_one()
        except (SQLAlchemyError, OSError) as exc:
            raise self._failed(exc) from exc

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._engine.dispose()

    async def drop(self) -> None:
        """Drop the store's tables (tests; a cluster being taken down for good)."""
        names = ["state", "events", "evicted", "nodes", "locks"]
        await self._run("; ".join(f"DROP TABLE IF EXISTS {{p}}_{n}" for n in names))
        await self._run("DROP SEQUENCE IF EXISTS {p}_offset")

    async def epoch(self) -> str:
        """The epoch of the offset counter."""
        if self._epoch is None:
            await self.open()
        assert self._epoch is not None
        return self._epoch

    async def append(self, topic: str, payload: str, key: str | None, now: float) -> int:
        """The offset of a message, stored once per cluster (see :meth:`ClusterStore.append`).

        Each statement is a transaction of its own (autocommit); the insert takes
        a lock that its commit releases, so inserts take offsets one at a time
        cluster-wide and commit in that order: a replay never returns an offset
        while an earlier one is still being written (a client resuming after the
        later would never get the earlier).  The lock is held for no round trip.
        """
        try:
            async with self._engine.connect() as conn:
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                offset = await self._offset_of(autocommit, key)  # another node stored it
                if offset is not None:
                    return offset
                inserted = await autocommit.execute(
                    self._sql(
                        'INSERT INTO {p}_events ("offset", topic, created, payload, message_key) '
                        "SELECT nextval('{p}_offset'), :t, :now, :payload, :key FROM "
                        "(SELECT pg_advisory_xact_lock(hashtext('{p}_offset'))) AS one_at_a_time "
                        'ON CONFLICT (message_key) DO NOTHING RETURNING "offset"'
                    ),
                    {"t": topic, "now": now, "payload": payload, "key": key},
                )
                offset = inserted.scalar()
                if offset is None:  # another node stored it between the look and the insert
                    return int(await self._offset_of(autocommit, key) or 0)
                await self._evict(autocommit, topic, now)
                return int(offset)
        except (SQLAlchemyError, OSError) as exc:
            raise self._failed(exc) from exc

    async def _offset_of(self, conn: AsyncConnection, key: str | None) -> int | None:
        """The offset of the message ``key`` names, if some node stored it."""
        if key is None:
            return None
        query = self._sql('SELECT "offset" FROM {p}_events WHERE message_key = :key')
        found = (await conn.execute(query, {"key": key})).scalar()
        return None if found is None else int(found)

    async def _evict(self, conn: AsyncConnection, topic: str, now: float) -> None:
        """Keep the newest ``bounds.size`` events of ``topic``; what is older than
        ``bounds.age`` goes at most once a second (:meth:`since` leaves it out before)."""
        size_cut = (
            'topic = :t AND "offset" <= (SELECT "offset" FROM {p}_events WHERE topic = :t '
            'ORDER BY "offset" DESC OFFSET :size LIMIT 1)'
        )
        await conn.execute(
            self._sql(_EVICT.replace("{where}", size_cut)), {"t": topic, "size": self.bounds.size}
        )
        if now - self._age_evicted >= _AGE_EVICTION_EVERY:
            self._age_evicted = now
            await conn.execute(
                self._sql(_EVICT.replace("{where}", "created < :cutoff")),
                {"cutoff": now - self.bounds.age},
            )

    async def offset(self) -> int:
        """The newest offset given so far (see :meth:`ClusterStore.offset`)."""
        ((last, called),) = await self._run("SELECT last_value, is_called FROM {p}_offset")
        return int(last) if called else 0

    async def mark_gap(self) -> None:
        """Record the offset counter as the store-wide marker (see ``ClusterStore.mark_gap``)."""
        await self._run(
            "INSERT INTO {p}_state VALUES ('dropped', nextval('{p}_offset')::text) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        )

    async def since(self, pattern: str, last: int, now: float) -> tuple[list[StoredEvent], bool]:
        """The events after ``last`` on ``pattern`` (see :meth:`ClusterStore.since`)."""
        like = literal_prefix(pattern).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        try:
            async with self._engine.begin() as conn:
                top = (
                    await conn.execute(self._sql("SELECT last_value, is_called FROM {p}_offset"))
                ).one()
                gap = (
                    await conn.execute(
                        self._sql("SELECT value FROM {p}_state WHERE name = 'dropped'")
                    )
                ).scalar()
                rows = await conn.execute(
                    self._sql(
                        'SELECT "offset", topic, payload, created FROM {p}_events '
                        'WHERE "offset" > :last AND topic LIKE :like ORDER BY "offset"'
                    ),
                    {"last": last, "like": like + "%"},
                )
                marks = await conn.execute(
                    self._sql(
                        'SELECT topic FROM {p}_evicted WHERE "offset" > :last AND topic LIKE :like'
                    ),
                    {"last": last, "like": like + "%"},
                )
                events = [StoredEvent(o, t, p, c) for o, t, p, c in rows if matches(pattern, t)]
                evicted = [t for (t,) in marks if matches(pattern, t)]
        except (SQLAlchemyError, OSError) as exc:
            raise self._failed(exc) from exc
        if last > (top[0] if top[1] else 0):
            return [], False
        cutoff = now - self.bounds.age
        complete = not evicted and all(e.time >= cutoff for e in events)
        complete = complete and int(gap or 0) <= last
        return [e for e in events if e.time >= cutoff], complete

    async def recent(self, pattern: str, count: int, cutoff: float) -> list[StoredEvent]:
        """The newest events on ``pattern`` (see :meth:`ClusterStore.recent`)."""
        if count <= 0:
            return []
        like = literal_prefix(pattern).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = await self._run(
            'SELECT "offset", topic, payload, created FROM {p}_events '
            'WHERE created >= :cutoff AND topic LIKE :like ORDER BY "offset" DESC',
            cutoff=cutoff,
            like=like + "%",
        )
        found = [StoredEvent(o, t, p, c) for o, t, p, c in rows if matches(pattern, t)][:count]
        return found[::-1]

    async def heartbeat(self, node: str, info: dict[str, Any], ttl: float) -> None:
        """Say that ``node`` is alive for ``ttl`` seconds."""
        await self._run(
            f"INSERT INTO {{p}}_nodes VALUES (:node, :info, {_NOW} + :ttl) "
            "ON CONFLICT (node) DO UPDATE SET info = excluded.info, expires = excluded.expires",
            node=node,
            info=json.dumps(info),
            ttl=ttl,
        )

    async def leave(self, node: str) -> None:
        """Remove ``node``'s heartbeat."""
        await self._run("DELETE FROM {p}_nodes WHERE node = :node", node=node)

    async def nodes(self) -> dict[str, dict[str, Any]]:
        """The nodes alive and what each reported."""
        await self._run(f"DELETE FROM {{p}}_nodes WHERE expires < {_NOW}")
        rows = await self._run("SELECT node, info FROM {p}_nodes ORDER BY node")
        return {node: json.loads(info) for node, info in rows}

    async def acquire(self, name: str, node: str, ttl: float) -> bool:
        """Take or renew the lease ``name``: free, expired or already ``node``'s."""
        rows = await self._run(
            f"INSERT INTO {{p}}_locks VALUES (:name, :node, {_NOW} + :ttl) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires "
            f"WHERE {{p}}_locks.holder = excluded.holder OR {{p}}_locks.expires < {_NOW} "
            "RETURNING holder",
            name=name,
            node=node,
            ttl=ttl,
        )
        return bool(rows)

    async def release(self, name: str, node: str) -> None:
        """Give up the lease ``name`` if ``node`` holds it."""
        await self._run(
            "DELETE FROM {p}_locks WHERE name = :name AND holder = :node", name=name, node=node
        )

    async def leaders(self) -> dict[str, str]:
        """Lease name → holder, for the leases not expired."""
        rows = await self._run(f"SELECT name, holder FROM {{p}}_locks WHERE expires >= {_NOW}")
        return {name: holder for name, holder in rows}
