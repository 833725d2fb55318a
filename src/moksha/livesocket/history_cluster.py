"""History shared by the nodes of a cluster (``moksha.cluster.url`` set).

:class:`ClusterHistory` keeps nothing itself: the cluster's store
(:mod:`moksha.cluster.store`) assigns every message one offset for the whole
cluster, keyed by the message's id, so a message has the same event id
``"<epoch>-<offset>"`` on every node, and a client that reconnects to another
node recovers from the same history.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from moksha.cluster.store import ClusterStore
from moksha.livesocket.history import Event, History, split_event_id

__all__ = ["ClusterHistory"]


class ClusterHistory(History):
    """A :class:`~moksha.livesocket.history.History` in the cluster's shared store.

    The store is opened and closed by its :class:`~moksha.cluster.ClusterNode`,
    not by this history.

    Args:
        store: the cluster's store, open.
        clock: returns the time in seconds; tests inject their own.
    """

    def __init__(self, store: ClusterStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock

    async def append(self, topic: str, payload: str, key: str | None = None) -> str:
        """The message's cluster-wide event id; the first node to ask stores it."""
        offset = await self.store.append(topic, payload, key, self._clock())
        # Read after: an append may have begun a new epoch (the store lost its data).
        return f"{await self.store.epoch()}-{offset}"

    async def mark_gap(self) -> None:
        """Say that messages up to now may have gone unrecorded (see ``ClusterStore.mark_gap``)."""
        await self.store.mark_gap()

    async def position(self) -> str:
        """The cluster's newest event id (see :meth:`History.position`)."""
        offset = await self.store.offset()
        return f"{await self.store.epoch()}-{offset}"

    async def since(self, pattern: str, last_id: str) -> tuple[list[Event], bool]:
        """The events after ``last_id`` on ``pattern`` (see :meth:`History.since`)."""
        parsed = split_event_id(last_id)
        epoch = await self.store.epoch()
        if parsed is None or parsed[0] != epoch:
            return [], False
        events, complete = await self.store.since(pattern, parsed[1], self._clock())
        return [Event(f"{epoch}-{e.offset}", e.topic, e.payload, e.time) for e in events], complete

    async def recent(self, pattern: str, count: int, max_age: float | None = None) -> list[Event]:
        """The newest ``count`` events on ``pattern`` (see :meth:`History.recent`)."""
        epoch = await self.store.epoch()
        kept = self.store.bounds.age
        age = kept if max_age is None else min(max_age, kept)
        events = await self.store.recent(pattern, count, self._clock() - age)
        return [Event(f"{epoch}-{e.offset}", e.topic, e.payload, e.time) for e in events]
