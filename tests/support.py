"""Helpers shared by the tests: wait for deliveries without sleeping."""

from __future__ import annotations

import threading
from typing import Any

from moksha.hub.api import Consumer

TIMEOUT = 5.0


class Inbox:
    """Collects items from any thread; ``wait(n)`` blocks until n arrived (bounded)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = threading.Condition()

    def __call__(self, item: Any) -> None:
        with self._changed:
            self.items.append(item)
            self._changed.notify_all()

    def wait(self, count: int = 1, timeout: float = TIMEOUT) -> list[Any]:
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.items) >= count, timeout)
        assert arrived, f"expected {count} items within {timeout}s, got {len(self.items)}"
        return list(self.items)


def consumer_of(topic, inbox: Inbox, *, field: str = "body", **attrs):
    """A consumer class on ``topic`` that puts ``message[field]`` in ``inbox``."""

    def consume(self, message):
        inbox(message[field] if field else message)

    return type("TestConsumer", (Consumer,), {"topic": topic, "consume": consume, **attrs})
