"""Where a failed message waits for its next attempt: outside its consumer's backlog.

A consumer that fails must not slow the others.  If a retry waited inside the
consumer (a worker sleeping through ``moksha.retry_delay``, or the message
going back into a full backlog), a consumer failing on every message would
fill its backlog, and publishers of its topics -- whose other consumers are
healthy -- would wait for it.  So a failed message is set aside in a
:class:`RetryPen` with a timer and put back at the end of the backlog when it
is due; meanwhile the consumer's workers take the next messages.

Policy: a pen holds at most ``moksha.retry_backlog`` messages per consumer.
While it is full, new deliveries to *that* consumer wait for room (the same
back-pressure as a full backlog); nothing is dropped.  When the hub stops,
messages still waiting in a pen are given back to their broker (nacked, when
it has acknowledgements) or counted and logged as lost.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["RetryPen"]

T = TypeVar("T")


class RetryPen(Generic[T]):
    """Items waiting for a timer, at most ``size`` of them; on the loop only.

    Args:
        size: the most items held (``moksha.retry_backlog``).
        loop: the hub's event loop.
        release: called with each item when its time has come.
    """

    def __init__(
        self, size: int, loop: asyncio.AbstractEventLoop, release: Callable[[T], None]
    ) -> None:
        self.size = size
        self._loop = loop
        self._release = release
        self._held: dict[int, tuple[T, asyncio.TimerHandle]] = {}
        self._keys = itertools.count()
        self._room: list[asyncio.Future[None]] = []

    def __len__(self) -> int:
        return len(self._held)

    @property
    def full(self) -> bool:
        """Whether new deliveries to the consumer should wait (see the module docstring)."""
        return len(self._held) >= self.size

    def hold(self, item: T, delay: float) -> None:
        """Release ``item`` after ``delay`` seconds (a retry is never refused: it was admitted)."""
        key = next(self._keys)
        self._held[key] = (item, self._loop.call_later(max(delay, 0.0), self._due, key))

    async def room(self) -> None:
        """Wait until the pen is under its bound."""
        while self.full:
            waiter = self._loop.create_future()
            self._room.append(waiter)
            await waiter

    def take_all(self) -> list[T]:
        """Stop every timer and return what was waiting (the hub stops)."""
        held, self._held = self._held, {}
        for _, timer in held.values():
            timer.cancel()
        self._wake()
        return [item for item, _ in held.values()]

    def _due(self, key: int) -> None:
        entry = self._held.pop(key, None)
        if entry is None:
            return
        self._wake()
        self._release(entry[0])

    def _wake(self) -> None:
        waiters, self._room = self._room, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
