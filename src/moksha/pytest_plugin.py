"""Moksha's pytest plugin: test consumers and producers without a broker and without sleeps.

Installed with Moksha (entry point ``pytest11``), so any project that depends
on Moksha gets two fixtures:

``moksha_hub``
    a :class:`HubHarness`.  ``moksha_hub.start(consumers=[...],
    producers=[...])`` starts a :class:`~moksha.hub.CentralMokshaHub` on the
    in-memory bus that records every message on it from its first moment;
    ``send`` publishes and returns a :class:`Sent` handle whose
    ``processed(timeout)`` waits until every consumer under test whose topic
    matches has finished with the message; ``wait_for(pattern)`` blocks until
    matching messages arrived (``consumed_by=Consumer``: and that consumer
    finished with them) and fails the test, saying what came instead, if they
    do not.  A consumer under test that raises fails the waiting call at once
    with its exception (set ``moksha_hub.raise_consumer_errors = False`` to
    test failures: they are in ``moksha_hub.errors``).  The hub is closed when
    the test ends.
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


    def test_a_side_effect_once_the_consumer_is_done(moksha_hub):
        moksha_hub.start(consumers=[Doubler])
        moksha_hub.send("in.number", 21).processed()   # Doubler.consume has returned
        assert moksha_hub.messages[-1].body == 42


    async def test_doubler_from_async_code(moksha_hub):  # with pytest-asyncio
        moksha_hub.start(consumers=[Doubler])
        await moksha_hub.asend("in.number", 21)
        [doubled] = await moksha_hub.await_for("out.double")
        assert doubled.body == 42

The hub runs on its own loop thread, in sync and async tests alike, so the
sync calls work everywhere; in ``async def`` tests prefer ``asend``,
``await_for`` and ``Sent.aprocessed``, which leave the test's event loop
free.  The consumer classes given to ``start`` run as thin subclasses (same
name and module) that report to the harness when ``consume`` returns or raises.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import pytest

from moksha.errors import HubClosed, MokshaError
from moksha.hub.api import Consumer, Producer
from moksha.hub.hub import CentralMokshaHub
from moksha.message import Message
from moksha.testing_observers import ConsumerError, observed, tested_class
from moksha.topics import matches

__all__ = ["ConsumerError", "HubHarness", "Sent", "moksha_config", "moksha_hub"]

T = TypeVar("T")

# How many distinct topics a wait_for failure lists before summarising the rest.
_TOPICS_SHOWN = 10


class Sent:
    """A message :meth:`HubHarness.send` published.

    Attributes:
        message: the message, with its ``id``.
    """

    def __init__(self, harness: HubHarness, message: Message) -> None:
        self._harness = harness
        self.message = message

    def processed(self, timeout: float = 5.0) -> Message:
        """Wait until every consumer under test whose topic matches finished with the message.

        Finished means ``consume`` returned (or raised :class:`~moksha.hub.api.Drop`
        or :class:`~moksha.hub.api.Nack`), or ``validate`` rejected it.

        Returns:
            The message.

        Raises:
            Exception: what a consumer under test raised, at once (with a note
                naming the consumer and the message).
            AssertionError: not every consumer finished within ``timeout``; names them.
        """
        harness = self._harness
        wanted = harness._consumers_of(self.message.topic)

        def done() -> bool:
            return all(harness._done_by(self.message.id, cls) for cls in wanted)

        with harness._arrived:
            if harness._wait(done, timeout):
                return self.message
            late = [cls.__name__ for cls in wanted if not harness._done_by(self.message.id, cls)]
        raise AssertionError(
            f"{', '.join(late)} did not finish with the message on {self.message.topic!r} "
            f"({self.message.id}) within {timeout}s"
        )

    async def aprocessed(self, timeout: float = 5.0) -> Message:
        """:meth:`processed` for ``async def`` tests, without blocking their event loop."""
        return await asyncio.to_thread(self.processed, timeout)


class HubHarness:
    """Starts a hub for one test, records every message on its bus, and waits for some.

    Args:
        config: keys layered under what :meth:`start` is given (the
            ``moksha_config`` fixture).

    Attributes:
        raise_consumer_errors: when True (default), a waiting call raises at
            once what a consumer under test raised; False to test failures.
        errors: every exception the consumers under test raised, in order.
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config: Mapping[str, Any] = config if config is not None else {}
        self.hub: CentralMokshaHub | None = None
        self.raise_consumer_errors = True
        self.errors: list[ConsumerError] = []
        self._messages: list[Message] = []
        # Message id -> the consumer classes under test that finished with it.
        self._finished: dict[str, set[type[Consumer]]] = {}
        self._reported = 0  # errors already raised in the test
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
        ``#``: it comes first in ``hub.consumers``.  Each consumer class runs
        as a subclass of the same name that reports when it finished with a
        message, for :meth:`Sent.processed` and ``wait_for(consumed_by=...)``.

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
        observe = partial(observed, finished=self._finish, failed=self._fail)
        consumer_classes = [recorder, *(observe(cls) for cls in consumers)]
        self.hub = _outside_event_loop(
            lambda: CentralMokshaHub(settings, consumer_classes, list(producers))
        )
        return self.hub

    def send(self, topic: str, body: Any, headers: Mapping[str, str] | None = None) -> Sent:
        """Publish ``body`` on ``topic`` and wait until the bus took it.

        Returns:
            A handle: ``.message`` is what was published, ``.processed()`` waits
            until the consumers under test have finished with it.

        Raises:
            HubClosed: :meth:`start` was not called (or the hub was closed).
        """
        hub = self._running_hub()
        if hub.loop is None:
            raise HubClosed("the hub is not running")
        publish = hub.publish(topic, body, headers=headers)
        message = asyncio.run_coroutine_threadsafe(publish, hub.loop).result()
        return Sent(self, message)

    async def asend(self, topic: str, body: Any, headers: Mapping[str, str] | None = None) -> Sent:
        """:meth:`send` for ``async def`` tests, without blocking their event loop."""
        return await asyncio.to_thread(self.send, topic, body, headers)

    def wait_for(
        self,
        pattern: str,
        count: int = 1,
        timeout: float = 5.0,
        *,
        consumed_by: type[Consumer] | None = None,
    ) -> list[Message]:
        """Wait until ``count`` recorded messages match ``pattern``.

        Messages count from the start of the hub, so waiting again for the
        same pattern after one more ``send`` needs ``count=2``.

        Args:
            pattern: a topic pattern (``*`` one word, ``#`` zero or more words).
            count: how many matching messages to wait for.
            timeout: seconds to wait before failing.
            consumed_by: a consumer class given to :meth:`start`: also wait
                until it finished with (consumed, or rejected) each of them.

        Returns:
            The first ``count`` matching messages, in arrival order.

        Raises:
            AssertionError: they did not arrive (or were not consumed) within
                ``timeout``; says what did.
            Exception: what a consumer under test raised meanwhile, at once
                (see :attr:`raise_consumer_errors`).
            MokshaError: ``consumed_by`` is not a consumer given to :meth:`start`.
            HubClosed: :meth:`start` was not called.
        """
        hub = self._running_hub()
        tested = {tested_class(c) for c in hub.consumers}
        if consumed_by is not None and consumed_by not in tested:
            raise MokshaError(
                f"consumed_by={consumed_by.__name__}: it is not one of the consumers given "
                "to moksha_hub.start(consumers=[...]); pass it there"
            )

        def matching() -> list[Message]:
            return [m for m in self._messages if matches(pattern, m.topic)]

        def done() -> bool:
            found = matching()[:count]
            if len(found) < count:
                return False
            return consumed_by is None or all(self._done_by(m.id, consumed_by) for m in found)

        with self._arrived:
            if self._wait(done, timeout):
                return matching()[:count]
            found, seen = len(matching()), Counter(m.topic for m in self._messages)
            consumed = sum(
                1 for m in matching()[:count] if consumed_by and self._done_by(m.id, consumed_by)
            )
        explanation = _explain(pattern, count, found, timeout, seen)
        if consumed_by is not None and found >= count:
            explanation = (
                f"{count} message(s) on {pattern!r} arrived, but {consumed_by.__name__} "
                f"finished with only {consumed} of them within {timeout}s."
            )
        raise AssertionError(explanation)

    async def await_for(
        self,
        pattern: str,
        count: int = 1,
        timeout: float = 5.0,
        *,
        consumed_by: type[Consumer] | None = None,
    ) -> list[Message]:
        """:meth:`wait_for` for ``async def`` tests, without blocking their event loop."""
        return await asyncio.to_thread(
            lambda: self.wait_for(pattern, count, timeout, consumed_by=consumed_by)
        )

    def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait (holding the lock) until ``done()``; raise a consumer's error at once."""

        def over() -> bool:
            return self._unreported_error() is not None or done()

        finished = self._arrived.wait_for(over, timeout)
        if (error := self._unreported_error()) is not None:
            self._reported += 1
            raise error.exception
        return finished

    def _unreported_error(self) -> ConsumerError | None:
        if self.raise_consumer_errors and self._reported < len(self.errors):
            return self.errors[self._reported]
        return None

    def _done_by(self, message_id: str, cls: type[Consumer]) -> bool:
        return cls in self._finished.get(message_id, ())

    def _consumers_of(self, topic: str) -> list[type[Consumer]]:
        """The consumer classes under test whose patterns match ``topic``."""
        hub = self._running_hub()
        return [
            tested
            for c in hub.consumers
            if (tested := tested_class(c)) is not None and any(matches(p, topic) for p in c.topics)
        ]

    def _finish(self, cls: type[Consumer], message: Message) -> None:
        with self._arrived:
            self._finished.setdefault(message.id, set()).add(cls)
            self._arrived.notify_all()

    def _fail(self, cls: type[Consumer], message: Message, exc: Exception) -> None:
        exc.add_note(f"raised by {cls.__qualname__}.consume on {message.topic} ({message.id})")
        with self._arrived:
            self.errors.append(ConsumerError(cls, message, exc))
            self._arrived.notify_all()

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
