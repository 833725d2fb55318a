"""Live-socket recovery beyond the history: what the history lost, the archive still has.

:class:`ArchiveBackedHistory` wraps the live socket's history.  Besides what
the history keeps, it remembers for the last :data:`INDEX_SIZE` events their
sequence number, topic and message id (``seen``, called by the live socket).
When a reconnecting client's gap is larger than the history, the messages the
history evicted are read from the archive, after the client's last message in
the archive's (time, row) order, and merged with what the history still holds
by sequence number.  The client hears ``recovered: true`` only when every event
the index knows on its pattern after its last one is in the replay; else
``false`` (reload), as without the archive.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection

from moksha.archive.models import MESSAGES
from moksha.archive.query import topic_condition
from moksha.archive.store import ArchiveStore
from moksha.config import Config
from moksha.livesocket.history import Event, History, history_from_config, split_event_id
from moksha.topics import matches

if TYPE_CHECKING:
    from moksha.cluster import ClusterNode

__all__ = ["INDEX_SIZE", "RECOVERY_LIMIT", "ArchiveBackedHistory", "archive_history"]

INDEX_SIZE = 100_000
"""Events whose message id is remembered (about 20 MB)."""
RECOVERY_LIMIT = 10_000
"""Most events one recovery replays from the archive; a larger gap means reload."""

M = MESSAGES


def archive_history(config: Config, cluster: ClusterNode | None = None) -> History | None:
    """The live socket's history backed by the archive, when ``moksha.archive`` is on.

    In a cluster (``cluster`` given) the history it falls back from is the cluster's.
    """
    if not config.archive:
        return None
    if cluster is not None:
        from moksha.livesocket.history_cluster import ClusterHistory

        inner: History = ClusterHistory(cluster.store)
    else:
        inner = history_from_config(config)
    return ArchiveBackedHistory(inner, ArchiveStore.from_config(config))


class ArchiveBackedHistory(History):
    """A history that falls back on the archive (see the module).

    Args:
        inner: the live socket's own history.
        store: the archive.
        index_size: events whose message id is remembered.
    """

    def __init__(self, inner: History, store: ArchiveStore, index_size: int = INDEX_SIZE) -> None:
        self.inner = inner
        self.store = store
        self._index: deque[tuple[int, str, str]] = deque(maxlen=index_size)  # seq, topic, id
        self._seq_of: dict[str, int] = {}
        self._id_of: dict[int, str] = {}

    async def append(self, topic: str, payload: str, key: str | None = None) -> str:
        return await self.inner.append(topic, payload, key)

    def seen(self, event_id: str, topic: str, message_id: str) -> None:
        parsed = split_event_id(event_id)
        if parsed is None:
            return
        seq = parsed[1]
        index = self._index
        if len(index) == index.maxlen:
            old_seq, _, old_id = index[0]
            self._id_of.pop(old_seq, None)
            if self._seq_of.get(old_id) == old_seq:
                del self._seq_of[old_id]
        index.append((seq, topic, message_id))
        self._seq_of[message_id] = seq
        self._id_of[seq] = message_id

    async def position(self) -> str | None:
        return await self.inner.position()

    async def recent(self, pattern: str, count: int, max_age: float | None = None) -> list[Event]:
        return await self.inner.recent(pattern, count, max_age)

    async def aclose(self) -> None:
        await self.inner.aclose()
        await asyncio.to_thread(self.store.close)

    async def since(self, pattern: str, last_id: str) -> tuple[list[Event], bool]:
        events, complete = await self.inner.since(pattern, last_id)
        parsed = split_event_id(last_id)
        if complete or parsed is None:
            return events, complete
        epoch, last = parsed
        last_message = self._id_of.get(last)
        if last_message is None or not self._index or self._index[0][0] > last:
            return events, False  # the index does not reach back that far
        wanted = [seq for seq, topic, _ in self._index if seq > last and matches(pattern, topic)]
        rows = await asyncio.to_thread(self._read, pattern, last_message)
        if rows is None:
            return events, False
        merged: dict[int, Event] = {}
        for row in rows:
            seq = self._seq_of.get(row["msg_id"])
            if seq is not None and seq > last:
                merged[seq] = Event(f"{epoch}-{seq}", row["topic"], _payload(row))
        for event in events:
            event_seq = split_event_id(event.id)
            if event_seq is not None:
                merged[event_seq[1]] = event
        replay = [merged[seq] for seq in sorted(merged)]
        return replay, all(seq in merged for seq in wanted)

    def _read(self, pattern: str, last_message: str) -> list[Any] | None:
        with self.store.engine.connect() as connection:
            return _after(connection, pattern, last_message)


def _after(connection: Connection, pattern: str, last_message: str) -> list[Any] | None:
    """The archived messages on ``pattern`` after ``last_message``; None: unknown or too many."""
    key = connection.execute(
        select(M.c.timestamp, M.c.id).where(M.c.msg_id == last_message)
    ).first()
    if key is None:
        return None
    at, row = key
    later = or_(M.c.timestamp > at, and_(M.c.timestamp == at, M.c.id > row))
    statement = (
        select(M.c.msg_id, M.c.topic, M.c.body, M.c.content_type)
        .where(later, topic_condition(pattern))
        .order_by(M.c.timestamp, M.c.id)
        .limit(RECOVERY_LIMIT + 1)
    )
    rows = list(connection.execute(statement).mappings())
    return None if len(rows) > RECOVERY_LIMIT else rows


def _payload(row: Any) -> str:
    if row["content_type"] == "application/json":
        return str(row["body"])
    return json.dumps(row["body"], ensure_ascii=False)
