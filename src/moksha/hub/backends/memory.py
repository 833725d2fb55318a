"""The embedded in-memory bus: the default backend, no broker needed.

Publishing awaits each matching subscriber's handler in turn, so a consumer
whose backlog is full slows the publisher down (back-pressure) instead of
losing messages.  The bus lives inside one hub; other processes reach it
through that hub's live socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

from moksha.hub.backends.base import Backend, Capabilities, Handler, Subscription, deliver
from moksha.message import Message
from moksha.topics import TopicRouter

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["MemoryBackend"]

log = logging.getLogger(__name__)

_YIELD_EVERY = 256


class _MemorySubscription(Subscription):
    def __init__(self, router: TopicRouter[Handler], patterns: Sequence[str], handler: Handler):
        self.patterns = tuple(patterns)
        self._router = router
        self._handler = handler

    async def cancel(self) -> None:
        for pattern in self.patterns:
            self._router.remove(pattern, self._handler)
        self.patterns = ()


class MemoryBackend(Backend):
    """Routes messages between subscribers of one process, by :mod:`moksha.topics` rules."""

    name = "memory"
    capabilities = Capabilities(native_wildcards=True)

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._router: TopicRouter[Handler] = TopicRouter()
        self._until_yield = _YIELD_EVERY

    async def connect(self) -> None:
        pass

    async def close(self) -> None:
        self._router = TopicRouter()

    async def publish(self, message: Message) -> None:
        waiting = self.offer(message)
        if waiting is not None:
            await waiting

    def offer(self, message: Message) -> Awaitable[None] | None:
        """Hand ``message`` to each subscriber; None when every one took it at once."""
        handlers = self._router.match(message.topic)
        for handler in handlers:
            try:
                waiting = handler(message)
            except Exception:
                # Nothing to nack here: one failing subscriber must not cost the others.
                log.exception("subscriber %r failed on %s", handler, message.topic)
                continue
            if waiting is not None:  # a full backlog: finish in order, waiting for room
                rest = handlers[handlers.index(handler) + 1 :]
                return self._deliver_rest(message, waiting, rest)
        # A publisher running ahead of its consumers gives them a turn every so
        # often: messages then die young (cheap for the GC) and the loop stays responsive.
        self._until_yield -= 1
        if not self._until_yield:
            self._until_yield = _YIELD_EVERY
            return asyncio.sleep(0)
        return None

    async def _deliver_rest(
        self, message: Message, waiting: Awaitable[None], handlers: Sequence[Handler]
    ) -> None:
        try:
            await waiting
        except Exception:
            log.exception("a subscriber failed on %s", message.topic)
        for handler in handlers:
            try:
                await deliver(handler, message)
            except Exception:
                log.exception("subscriber %r failed on %s", handler, message.topic)

    async def subscribe(
        self,
        patterns: Sequence[str],
        handler: Handler,
        *,
        group: str | None = None,
        concurrency: int = 1,
    ) -> Subscription:
        for pattern in patterns:
            self._router.add(pattern, handler)
        return _MemorySubscription(self._router, patterns, handler)
