"""Moksha's pytest plugin: test consumers and producers without a broker and without sleeps.

Installed with Moksha (entry point ``pytest11``), so any project that depends
on Moksha gets two fixtures:

``moksha_hub``
    a :class:`HubHarness`.  ``moksha_hub.start(consumers=[...],
    producers=[...])`` starts a :class:`~moksha.hub.CentralMokshaHub` on the
    in-memory bus that records every message on it from its first moment;
    ``send`` publishes; ``wait_for(pattern)`` blocks until matching messages
    arrived and fails the test, saying what came instead, if they do not.  The
    hub is closed when the test ends.
``moksha_config``
    a dict of configuration keys ``start`` uses (empty; the memory backend is
    the default).  Change it in the test before ``start``, or override the
    fixture in a ``conftest.py`` to configure every test of a project.

The example a plugin author copies::

    from moksha.hub.api import Consumer


    class Doubler(Consumer):
        topic = "in.number"

        def consume(self, message):
            self.send_message("out.double", message.body * 2)


    def test_doubler_doubles(moksha_hub):
        moksha_hub.start(consumers=[Doubler])
        moksha_hub.send("in.number", 21)
        assert moksha_hub.wait_for("out.double")[0].body == 42


    async def test_doubler_from_async_code(moksha_hub):  # with pytest-asyncio
        moksha_hub.start(consumers=[Doubler])
        await moksha_hub.asend("in.number", 21)
        [doubled] = await moksha_hub.await_for("out.double")
        assert doubled.body == 42

The hub runs on its own loop thread, in sync and async tests alike, so the
sync calls work everywhere; in ``async def`` tests prefer ``asend`` and
``await_for``, which leave the test's event loop free.  When an expected
message never comes, look at the captured log of the failed test: an
exception in a consumer is logged there.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from moksha.errors import HubClosed, MokshaError
from moksha.hub.api import Consumer, Producer
from moksha.hub.hub import CentralMokshaHub
from moksha.message import Message
from moksha.topics import matches

__all__ = ["HubHarness", "moksha_config", "moksha_hub"]

T = TypeVar("T")

# How many distinct topics a wait_for failure lists before summarising the rest.
_TOPICS_SHOWN = 10


class HubHarness:
    """Starts a hub for one test, records every message on its bus, and waits for some.

    Args:
        config: keys layered under what :meth:`start` is given (the
            ``moksha_config`` fixture).
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config: Mapping[str, Any] = config if config is not None else {}
        self.hub: CentralMokshaHub | None = None
        self._messages: list[Message] = []
        self._arrived = threading.Condition()

    @property
    def messages(self) -> list[Message]:
        """Every message recorded since :meth:`start`, in arrival order (a copy)."""
        with self._arrived:
            return list(self._messages)

    def start(
        self,
        consumers: Sequence[type[Consumer]] = (),
        producers: Sequence[type[Producer]] = (),
        config: Mapping[str, Any] | None = None,
    ) -> CentralMokshaHub:
        """Start a hub that runs ``consumers`` and ``producers`` on the in-memory bus.

        Recording starts before any of them does, so even a producer's first
        poll (``now = True``) is recorded.  The recorder is a consumer on
        ``#``: it comes first in ``hub.consumers``.

        Args:
            consumers: consumer classes to run (installed plugins are not loaded).
            producers: producer classes to run.
            config: keys over ``moksha_config``; ``moksha.backends`` defaults to
                ``memory`` and may be set to run against a real broker.

        Returns:
            The running hub.

        Raises:
            MokshaError: this test already started a hub.
            ConfigError: a configuration value is wrong.
        """
        if self.hub is not None:
            raise MokshaError("moksha_hub.start() was already called in this test: start once")
        settings = {"moksha.backends": "memory", **self.config, **(config or {})}
        recorder = _recorder_class(self)
        consumer_classes = [recorder, *consumers]
        self.hub = _outside_event_loop(
            lambda: CentralMokshaHub(settings, consumer_classes, list(producers))
        )
        return self.hub

    def send(self, topic: str, body: Any, headers: Mapping[str, str] | None = None) -> None:
        """Publish ``body`` on ``topic`` and wait until the bus took it.

        Raises:
            HubClosed: :meth:`start` was not called (or the hub was closed).
        """
        self._running_hub().send_message(topic, body, headers=headers, wait=True)

    async def asend(self, topic: str, body: Any, headers: Mapping[str, str] | None = None) -> None:
        """:meth:`send` for ``async def`` tests, without blocking their event loop."""
        await asyncio.to_thread(self.send, topic, body, headers)

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 5.0) -> list[Message]:
        """Wait until ``count`` recorded messages match ``pattern``.

        Messages count from the start of the hub, so waiting again for the
        same pattern after one more ``send`` needs ``count=2``.

        Args:
            pattern: a topic pattern (``*`` one word, ``#`` zero or more words).
            count: how many matching messages to wait for.
            timeout: seconds to wait before failing.

        Returns:
            The first ``count`` matching messages, in arrival order.

        Raises:
            AssertionError: they did not arrive within ``timeout``; says what did.
            HubClosed: :meth:`start` was not called.
        """
        self._running_hub()

        def matching() -> list[Message]:
            return [m for m in self._messages if matches(pattern, m.topic)]

        with self._arrived:
            if self._arrived.wait_for(lambda: len(matching()) >= count, timeout):
                return matching()[:count]
            found, seen = len(matching()), Counter(m.topic for m in self._messages)
        raise AssertionError(_explain(pattern, count, found, timeout, seen))

    async def await_for(self, pattern: str, count: int = 1, timeout: float = 5.0) -> list[Message]:
        """:meth:`wait_for` for ``async def`` tests, without blocking their event loop."""
        return await asyncio.to_thread(self.wait_for, pattern, count, timeout)

    def close(self) -> None:
        """Stop the hub (the fixture does it at the end of the test).  Closing twice is harmless."""
        if self.hub is not None:
            self.hub.close()

    def _record(self, message: Message) -> None:
        with self._arrived:
            self._messages.append(message)
            self._arrived.notify_all()

    def _running_hub(self) -> CentralMokshaHub:
        if self.hub is None:
            raise HubClosed("no hub yet: call moksha_hub.start(consumers=[...]) first")
        return self.hub


def _recorder_class(harness: HubHarness) -> type[Consumer]:
    """A consumer class on ``#`` feeding ``harness`` (the hub instantiates classes)."""

    class MokshaTestRecorder(Consumer):
        topic = "#"

        # async: recording is quick, so it runs on the loop instead of a worker thread.
        async def consume(self, message: Message) -> None:
            harness._record(message)

    return MokshaTestRecorder


def _outside_event_loop(call: Callable[[], T]) -> T:
    """Run ``call()`` where no event loop runs, so the hub gets its own loop thread.

    In an ``async def`` test the test's loop runs in this thread; a hub created
    there would wait to be awaited instead of starting.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return call()
    with ThreadPoolExecutor(1, thread_name_prefix="moksha-test") as executor:
        return executor.submit(call).result()


def _explain(pattern: str, count: int, found: int, timeout: float, seen: Counter[str]) -> str:
    wanted = f"{count} message{'s' if count != 1 else ''}"
    head = f"expected {wanted} on {pattern!r} within {timeout}s, got {found}."
    if not seen:
        return f"{head} Nothing at all arrived on the bus."
    shown = ", ".join(f"{topic} ({n})" for topic, n in seen.most_common(_TOPICS_SHOWN))
    if len(seen) > _TOPICS_SHOWN:
        shown += f" and {len(seen) - _TOPICS_SHOWN} more topics"
    total = sum(seen.values())
    return f"{head} What arrived instead, {total} message{'s' if total != 1 else ''}: {shown}."


@pytest.fixture
def moksha_config() -> dict[str, Any]:
    """Configuration keys for the ``moksha_hub`` fixture's hub; change it before ``start``."""
    return {}


@pytest.fixture
def moksha_hub(moksha_config: dict[str, Any]) -> Iterator[HubHarness]:
    """A :class:`HubHarness`: ``start`` a hub, ``send``, ``wait_for``; closed after the test."""
    harness = HubHarness(moksha_config)
    try:
        yield harness
    finally:
        harness.close()
