"""A bounded FIFO between the publisher and an ``async def`` consumer, on one event loop.

It does what the hot path needs and no more: :meth:`Backlog.offer` and
:meth:`Backlog.pop` never create a coroutine, and waiting happens only when
the backlog is full (the publisher waits for room) or empty (the consumer
waits for work).  ``asyncio.Queue`` does this too but costs about three times
as much per message (benchmarks/RESULTS.md), which is most of the hub's own
overhead on the memory bus.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["Backlog"]

T = TypeVar("T")


class Backlog(Generic[T]):
    """At most ``size`` items (never None), oldest first.  Not thread-safe: one event loop only.

    Args:
        size: the most items held.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: deque[T] = deque()
        self._work: asyncio.Future[None] | None = None
        self._room: list[asyncio.Future[None]] = []

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: T) -> bool:
        """Add ``item`` if there is room; return whether it was added."""
        if len(self._items) >= self.size:
            return False
        self._items.append(item)
        if self._work is not None:
            _wake(self._work)
            self._work = None
        return True

    def push(self, item: T) -> None:
        """Add ``item`` even past the bound (for an item admitted before, e.g. a retry)."""
        self._items.append(item)
        if self._work is not None:
            _wake(self._work)
            self._work = None

    async def put(self, item: T) -> None:
        """Add ``item``, waiting for room while the backlog is full."""
        while not self.offer(item):
            room = asyncio.get_running_loop().create_future()
            self._room.append(room)
            await room

    def pop(self) -> T | None:
        """Take the oldest item; None when the backlog is empty."""
        if not self._items:
            return None
        item = self._items.popleft()
        while self._room:  # wake one publisher waiting for room (skip any that gave up)
            waiter = self._room.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                break
        return item

    def snapshot(self) -> list[T]:
        """The items waiting, oldest first (a copy)."""
        return list(self._items)

    async def get(self) -> T:
        """Take the oldest item, waiting for one while the backlog is empty."""
        while (item := self.pop()) is None:
            self._work = asyncio.get_running_loop().create_future()
            await self._work
        return item


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
