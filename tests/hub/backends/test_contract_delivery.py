"""Delivery semantics a hub keeps on every backend: workers, overlaps, bounds, retries.

The same cases as ``test_contract.py`` (``support.BACKENDS``), through a
:class:`~moksha.hub.CentralMokshaHub`, since these are promises of the hub
running consumers on a backend, not of the backend alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import uuid4

import aio_pika
import pytest

from moksha.config import load_config
from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer
from moksha.hub.backends import backend_class
from moksha.hub.backends.stomp_subscription import GROUP_QUEUE_PREFIX
from moksha.hub.hub import group_name
from moksha.message import Message
from support import BACKENDS, SPACE, TIMEOUT, Received, until

RABBIT = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture(params=sorted(BACKENDS))
def settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The config of one backend (skipped when its broker is not running)."""
    return {**BACKENDS[request.param](), "moksha.reconnect_delay": 0.1}


@pytest.fixture
def prefix() -> str:
    return f"{SPACE}.delivery.{uuid4().hex[:12]}"


@pytest.fixture
async def cleanup(settings: dict[str, Any]) -> AsyncIterator[list[type[Consumer]]]:
    """Consumer classes whose durable broker queues a test leaves; deleted afterwards."""
    classes: list[type[Consumer]] = []
    yield classes
    backend = settings["moksha.backends"]
    if backend == "redis":
        return  # its keys carry the run's prefix: tests/conftest.py deletes them at the end
    if backend not in ("amqp", "stomp") and classes:
        await delete_group_queues(settings, {group_name(cls) for cls in classes})
    if backend not in ("amqp", "stomp") or not classes:
        return
    prefix = "moksha." if backend == "amqp" else GROUP_QUEUE_PREFIX
    async with await aio_pika.connect(RABBIT) as connection:
        channel = await connection.channel()
        for cls in classes:
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(prefix + group_name(cls))


async def delete_group_queues(settings: dict[str, Any], groups: set[str]) -> None:
    """Delete what a durable backend keeps for ``groups`` (MQTT sessions, JetStream consumers)."""
    config = load_config(overrides=settings, environ={}, search=False)
    [name] = config.backends
    backend = backend_class(name)(config)
    if not backend.capabilities.durable:
        return
    for queue in await backend.durable_queues():
        if queue.group in groups:
            await backend.delete_durable_queue(queue.name)


def hub(settings: dict[str, Any], consumers: list[type[Consumer]], **more: Any) -> CentralMokshaHub:
    return CentralMokshaHub({**settings, **more}, consumers, [])


def acking(settings: dict[str, Any]) -> dict[str, Any]:
    """The backend with acknowledgements where it has a choice (STOMP: client acks)."""
    if settings["moksha.backends"] == "stomp":
        return {**settings, "stomp_ack_mode": "client-individual"}
    return settings


# -- 15.1: N workers, N messages in flight ----------------------------------


async def test_n_workers_have_n_messages_in_flight(settings, prefix, cleanup):
    """Four workers, four messages: all four are inside ``consume`` at once, and acked."""
    workers = 4
    together = threading.Barrier(workers, timeout=TIMEOUT)
    consumed: list[int] = []

    class Parallel(Consumer):
        topic = f"{prefix}.job"

        def consume(self, message):
            together.wait()  # breaks (and fails consume) unless all four arrive
            consumed.append(message.body)

    cleanup.append(Parallel)
    settings = acking(settings)
    async with hub(settings, [Parallel], **{"moksha.workers_per_consumer": workers}) as h:
        for i in range(workers):
            await h.publish(f"{prefix}.job", i)
        await until(lambda: len(consumed) == workers)
        assert not together.broken
        assert sorted(consumed) == list(range(workers))
        assert h.consumers[0].stats()["exceptions"] == 0


async def test_n_async_workers_have_n_messages_in_flight(settings, prefix, cleanup):
    workers = 3
    inside = 0
    most = 0
    release = asyncio.Event()
    consumed: list[int] = []

    class AsyncParallel(Consumer):
        topic = f"{prefix}.job"

        async def consume(self, message):
            nonlocal inside, most
            inside += 1
            most = max(most, inside)
            if most == workers:
                release.set()
            await asyncio.wait_for(release.wait(), TIMEOUT)
            inside -= 1
            consumed.append(message.body)

    cleanup.append(AsyncParallel)
    settings = acking(settings)
    async with hub(settings, [AsyncParallel], **{"moksha.workers_per_consumer": workers}) as h:
        for i in range(workers):
            await h.publish(f"{prefix}.job", i)
        await until(lambda: len(consumed) == workers)
    assert most == workers


# -- 15.3: overlapping patterns ---------------------------------------------


async def test_a_backend_delivers_a_message_once_to_overlapping_patterns(settings, prefix):
    config = load_config(overrides=settings, environ={}, search=False)
    [name] = config.backends
    async with backend_class(name)(config) as backend:
        received = Received()
        await backend.subscribe([f"{prefix}.*", f"{prefix}.#", f"{prefix}.a"], received)
        await backend.publish(Message(f"{prefix}.a", "a"))
        await backend.publish(Message(f"{prefix}.b.c", "bc"))
        # Markers through each pattern's path: copies sent before them came first.
        await backend.publish(Message(f"{prefix}.m", "m"))  # p.* and p.#
        await backend.publish(Message(f"{prefix}.m.m", "mm"))  # p.# only
        bodies = lambda: [m.body for m in received.messages]  # noqa: E731
        await until(lambda: {"m", "mm"} <= set(bodies()))
        assert sorted(bodies()) == ["a", "bc", "m", "mm"]


async def test_a_consumer_and_a_callback_get_a_message_once_for_overlapping_patterns(
    settings, prefix, cleanup
):
    consumed: list[str] = []

    class Overlapping(Consumer):
        topic = [f"{prefix}.*", f"{prefix}.#"]

        def consume(self, message):
            consumed.append(message.body)

    cleanup.append(Overlapping)
    called: list[str] = []
    async with hub(settings, [Overlapping]) as h:
        await h.asubscribe(f"{prefix}.*", lambda m: called.append(m.body))
        await h.asubscribe(f"{prefix}.#", lambda m: called.append(m.body))  # another callback
        callback: Callable[[Message], None] = lambda m: called.append("once:" + m.body)  # noqa: E731
        await h.asubscribe(f"{prefix}.*", callback)
        await h.asubscribe(f"{prefix}.#", callback)
        for body in ("x", "y", "z.z"):
            await h.publish(f"{prefix}.{body}", body)
        # Markers through each pattern's path: copies sent before them came first.
        await h.publish(f"{prefix}.end", "end")  # p.* and p.#
        await h.publish(f"{prefix}.end.end", "end.end")  # p.# only
        await until(
            lambda: (
                {"once:end", "once:end.end"} <= set(called)
                and called.count("end") == 2
                and "end.end" in called
                and "end.end" in consumed
            )
        )
    everything = ["end", "end.end", "x", "y", "z.z"]
    assert sorted(consumed) == everything
    assert sorted(c for c in called if c.startswith("once:")) == [f"once:{b}" for b in everything]
    # The two distinct lambdas are two subscribers: p.* gets three, p.# all five.
    assert sorted(c for c in called if not c.startswith("once:")) == sorted(
        ["end", "x", "y", *everything]
    )


# -- 15.2: bounded publishing from a consumer, flushed on shutdown ----------


async def test_what_a_consumer_publishes_to_a_slow_one_arrives_whole(settings, prefix, cleanup):
    """A relay publishes each message on to a slow consumer; bounds hold, nothing is lost."""
    total = 120
    slow_got: list[int] = []

    class Relay(Consumer):
        topic = f"{prefix}.in"

        def consume(self, message):
            self.send_message(f"{prefix}.out", message.body)

    class SlowSink(Consumer):
        topic = f"{prefix}.out"

        async def consume(self, message):
            await asyncio.sleep(0.001)
            slow_got.append(message.body)

    cleanup.extend([Relay, SlowSink])
    bounds = {"moksha.consumer_backlog": 10, "moksha.outgoing_queue": 10}
    async with hub(settings, [Relay, SlowSink], **bounds) as h:
        for i in range(total):
            await h.publish(f"{prefix}.in", i)
        await until(lambda: len(slow_got) == total, timeout=3 * TIMEOUT)
    assert sorted(slow_got) == list(range(total))


# -- 19.6: a failing consumer does not slow a healthy one ---------------------


async def test_a_failing_consumer_does_not_hold_up_a_healthy_one_on_the_same_topic(
    settings, prefix, cleanup
):
    """Retries wait outside the backlog: the healthy consumer gets everything at once.

    With a small backlog, retries waiting inside the failing consumer (a worker
    sleeping through the retry delay) would stop the publisher after a few
    messages, until the first retry is over.  So: by the time the failing
    consumer makes its first retry, the healthy one has every message.
    """
    total = 40
    healthy: list[int] = []
    healthy_had_at_first_retry: list[int] = []
    failures = 0

    class Failing(Consumer):
        topic = f"{prefix}.job"

        def consume(self, message):
            nonlocal failures
            if message.headers.get("moksha-attempt") == "2" and not healthy_had_at_first_retry:
                healthy_had_at_first_retry.append(len(healthy))
            failures += 1
            raise OSError("always")

    class Healthy(Consumer):
        topic = f"{prefix}.job"

        def consume(self, message):
            healthy.append(message.body)

    cleanup.extend([Failing, Healthy])
    settings = acking(settings)
    config = {
        "moksha.consumer_backlog": 5,
        "moksha.max_retries": 1,
        "moksha.retry_delay": 1.0,
        "moksha.shutdown_timeout": 0.5,
    }
    async with hub(settings, [Failing, Healthy], **config) as h:
        for i in range(total):
            await h.publish(f"{prefix}.job", i)
        await until(lambda: bool(healthy_had_at_first_retry), timeout=3 * TIMEOUT)
        assert healthy_had_at_first_retry == [total]
        assert sorted(healthy) == list(range(total))
        if not h.backends[0].capabilities.acknowledgements:
            # In memory the failing consumer also went on with the next messages.
            # (A broker's queue keeps its order: with one worker, a retry due
            # later holds up that consumer's own queue, and only that one.)
            assert failures >= total


# -- 15.5: the attempt count survives a redelivery ----------------------------


async def test_a_poison_message_is_dead_lettered_after_max_retries_across_a_restart(
    settings, prefix, cleanup
):
    """Hub one makes attempt 1 and stops; hub two makes attempts 2 and 3, then dead-letters.

    The retry went back on the broker with its attempt number, so the count
    does not start again with the redelivery.
    """
    settings = acking(settings)  # STOMP redelivers with client acks
    config = load_config(overrides=settings, environ={}, search=False)
    [name] = config.backends
    if not backend_class(name)(config).capabilities.acknowledgements:
        pytest.skip(f"{name} does not redeliver: nothing is left after a hub stops")
    attempts: list[str] = []
    dead: list[Message] = []

    class Poison(Consumer):
        topic = f"{prefix}.job"

        def consume(self, message):
            attempts.append(message.headers.get("moksha-attempt", "1"))
            raise ValueError("poison")

    class DeadLetters(Consumer):
        topic = f"{prefix}.job.dead"

        def consume(self, message):
            dead.append(message)

    cleanup.extend([Poison, DeadLetters])
    # The first hub stops before its retry is due (3 s: room for a loaded machine); the
    # retry keeps its due time across the restart, so the second hub waits out the rest.
    first = {"moksha.max_retries": 2, "moksha.retry_delay": 3.0, "moksha.shutdown_timeout": 0.3}
    async with hub(settings, [Poison, DeadLetters], **first) as h:
        await h.publish(f"{prefix}.job", {"n": 1})
        await until(lambda: attempts == ["1"])
    assert attempts == ["1"]  # stopped before the retry was due
    second = {**first, "moksha.retry_delay": 0.1, "moksha.shutdown_timeout": 2.0}
    async with hub(settings, [Poison, DeadLetters], **second):
        await until(lambda: bool(dead), timeout=3 * TIMEOUT)
    assert attempts == ["1", "2", "3"]
    [letter] = dead
    assert letter.topic == f"{prefix}.job.dead"
    assert letter.headers["moksha-attempts"] == "3"
    assert letter.body == {"n": 1}


# -- 10.4 / 15.2: send_message from plain Python keeps the caller's order -----


def plain_python_order(settings: dict[str, Any], topic: str, total: int) -> list[Any]:
    """A script's way: a hub on its own thread, send_message in a loop, then flush."""
    received: list[Any] = []
    done = threading.Event()

    def record(message: Message) -> None:
        received.append(message.body)
        if len(received) == total:
            done.set()

    hub_ = CentralMokshaHub(settings, [], [])
    try:
        hub_.subscribe(topic, record)
        for i in range(total):
            hub_.send_message(topic, i)
        hub_.flush()  # every one confirmed by the backend, or this raises
        done.wait(3 * TIMEOUT)
    finally:
        hub_.close()
    return received


async def test_send_message_from_plain_python_arrives_in_order(settings, prefix):
    total = 500
    received = await asyncio.to_thread(plain_python_order, settings, f"{prefix}.seq", total)
    assert received == list(range(total))


async def test_zeromq_loose_patterns_deliver_a_message_once(prefix):
    """The original's loose matching (zmq_strict = false) keeps one delivery per subscriber."""
    settings = {**BACKENDS["zeromq"](), "zmq_strict": False}
    config = load_config(overrides=settings, environ={}, search=False)
    async with backend_class("zeromq")(config) as backend:
        received = Received()
        await backend.subscribe([prefix, f"{prefix}.a", f"{prefix}.#"], received)
        await backend.publish(Message(f"{prefix}.a", "a"))
        await backend.publish(Message(f"{prefix}.b", "b"))
        await until(lambda: len(received.messages) >= 2)
        await backend.publish(Message(f"{prefix}.end", "end"))  # in order after the others
        await until(lambda: any(m.body == "end" for m in received.messages))
    assert [m.body for m in received.messages] == ["a", "b", "end"]
