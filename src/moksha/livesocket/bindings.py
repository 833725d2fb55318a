"""Bind on demand: the broker sends a node only what its live-socket clients asked for.

With ``moksha.livesocket.bind_on_demand = true`` the live socket's one hub
subscription starts with no pattern at all, and :class:`Bindings` keeps its
patterns equal to the set its clients subscribed to: the first client on a
pattern binds it (the subscribe waits until the broker bound it, so nothing
published after it is missed), the last one leaving unbinds it.  ``#`` is
bound only when a client asks for ``#``.  One broker queue per node, bindings
added and removed on it: a message matching several patterns still arrives
once, in order.

Where the backend cannot change a subscription in place (memory, STOMP,
ZeroMQ: see :meth:`moksha.hub.backends.Subscription.rebind`) the live socket
keeps its one ``#`` subscription, and says so in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from moksha.errors import MokshaError

__all__ = ["BIND_TIMEOUT", "Bindings"]

log = logging.getLogger("moksha.livesocket")

BIND_TIMEOUT = 5.0
"""Seconds a subscribe waits for the broker's binding before going ahead without it."""

Rebind = Callable[[Sequence[str]], Awaitable[bool]]


class Bindings:
    """The patterns a node's clients want, kept bound by one task.

    Args:
        rebind: makes the hub subscription's patterns exactly these (see
            :meth:`moksha.hub.MokshaHub.arebind`); False when it cannot.
    """

    def __init__(self, rebind: Rebind) -> None:
        self._rebind = rebind
        self._wanted: Counter[str] = Counter()
        self.bound: frozenset[str] = frozenset()
        self._busy = False  # a rebind is in flight
        self._changed = asyncio.Event()
        self._settled = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> bool:
        """Unbind everything; False when the backend cannot bind on demand."""
        if not await self._rebind([]):
            return False
        self._task = asyncio.create_task(self._keep(), name="moksha live-socket bindings")
        return True

    async def aclose(self) -> None:
        """Stop keeping the bindings (the subscription itself is the hub's to cancel)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def add(self, pattern: str) -> None:
        """Count one more client on ``pattern``; return once it is bound (bounded wait)."""
        self._wanted[pattern] += 1
        if self._wanted[pattern] > 1 and pattern in self.bound and not self._busy:
            return
        # Even when bound: a rebind in flight may be removing it (its last client had left).
        self._changed.set()
        try:
            async with asyncio.timeout(BIND_TIMEOUT), self._settled:
                await self._settled.wait_for(self._bound_now(pattern))
        except TimeoutError:
            log.warning("the broker did not bind %s within %ss; retrying", pattern, BIND_TIMEOUT)

    def _bound_now(self, pattern: str) -> Callable[[], bool]:
        return lambda: pattern in self.bound and not self._busy and not self._changed.is_set()

    def remove(self, pattern: str) -> None:
        """Count one client fewer on ``pattern``; the last one leaving unbinds it."""
        if self._wanted[pattern] <= 1:
            del self._wanted[pattern]
            self._changed.set()
        else:
            self._wanted[pattern] -= 1

    async def _keep(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            wanted = frozenset(self._wanted)
            if wanted != self.bound:
                self._busy = True
                try:
                    await self._rebind(sorted(wanted))
                    self.bound = wanted
                except MokshaError as exc:
                    log.warning("could not change the live socket's bindings: %s", exc)
                    await asyncio.sleep(1.0)  # the broker is away: again, not in a tight loop
                    self._changed.set()
                finally:
                    self._busy = False
            async with self._settled:
                self._settled.notify_all()
