"""The embedded in-memory bus: the default backend, no broker needed.

Publishing awaits each matching subscriber's handler in turn, so a consumer
whose backlog is full slows the publisher down (back-pressure) instead of
losing messages.  The bus lives inside one hub; other processes reach it
through that hub's live socket.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from moksha.hub.backends.base import Backend, Capabilities, Handler, Subscription
from moksha.message import Message
from moksha.topics import TopicRouter

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["MemoryBackend"]

log = logging.getLogger(__name__)


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

    async def connect(self) -> None:
        pass

    async def close(self) -> None:
        self._router = TopicRouter()

    async def publish(self, message: Message) -> None:
        for handler in self._router.match(message.topic):
            try:
                await handler(message)
            except Exception:
                # Nothing to nack here: one failing subscriber must not cost the others.
                log.exception("subscriber %r failed on %s", handler, message.topic)

    async def subscribe(
        self, patterns: Sequence[str], handler: Handler, *, group: str | None = None
    ) -> Subscription:
        for pattern in patterns:
            self._router.add(pattern, handler)
        return _MemorySubscription(self._router, patterns, handler)
