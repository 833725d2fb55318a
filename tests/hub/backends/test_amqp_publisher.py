"""What the AMQP backend's confirmed publishing guarantees, against the real RabbitMQ.

Many publishes awaiting their confirms at once arrive in the order they were
started; a message the broker nacks fails its own publish (and only it), with
the reason; a publish cut off by the backend closing fails instead of hanging,
and every publish that returned is on the broker.  The wire format matches
what aio-pika sends, byte for byte.
"""

from __future__ import annotations

import asyncio

import aio_pika
import pytest
from amqp_support import backend_for
from pamqp.header import ContentHeader

from moksha.errors import BackendError, BackendUnavailable
from moksha.hub.backends.amqp_options import to_amqp, to_properties
from moksha.message import Message
from support import TIMEOUT


async def bound_queue(
    raw: aio_pika.abc.AbstractChannel, name: str, topic: str, **arguments: object
) -> aio_pika.abc.AbstractQueue:
    queue = await raw.declare_queue(name, exclusive=True, arguments=arguments or None)
    await queue.bind("amq.topic", routing_key=topic)
    return queue


async def drain(queue: aio_pika.abc.AbstractQueue, count: int) -> list[object]:
    """The bodies of the first ``count`` messages of ``queue``, in order."""
    bodies: list[object] = []
    async with asyncio.timeout(TIMEOUT), queue.iterator() as messages:
        async for delivery in messages:
            await delivery.ack()
            bodies.append(Message(delivery.routing_key or "", payload=delivery.body).body)
            if len(bodies) == count:
                break
    return bodies


def test_the_properties_are_what_aio_pika_would_send() -> None:
    message = Message("a.b", {"x": "é"}, headers={"who": "me", "n": "1"})
    ours = ContentHeader(0, 10, to_properties(message)).marshal()
    assert ours == ContentHeader(0, 10, to_amqp(message).properties).marshal()


async def test_publishes_awaiting_their_confirms_together_arrive_in_order(raw, prefix) -> None:
    topic = f"{prefix}.order"
    queue = await bound_queue(raw, f"{prefix}.order", topic)
    total = 1000
    async with backend_for() as backend:
        for start in range(0, total, 250):  # windows of 250 unconfirmed publishes
            window = range(start, start + 250)
            await asyncio.gather(*(backend.publish(Message(topic, n)) for n in window))
    assert await drain(queue, total) == list(range(total))


async def test_a_nacked_publish_fails_alone_with_the_reason(raw, prefix) -> None:
    full, fine = f"{prefix}.full", f"{prefix}.fine"
    # A queue that refuses every message: the broker nacks what is routed to it.
    limit = {"x-max-length": 0, "x-overflow": "reject-publish"}
    await bound_queue(raw, f"{prefix}.full", full, **limit)
    queue = await bound_queue(raw, f"{prefix}.fine", fine)
    async with backend_for() as backend:
        outcomes = await asyncio.gather(
            backend.publish(Message(fine, 1)),
            backend.publish(Message(full, "refused")),
            backend.publish(Message(fine, 2)),
            return_exceptions=True,
        )
        assert outcomes[0] is None and outcomes[2] is None
        assert isinstance(outcomes[1], BackendError)
        assert full in str(outcomes[1]) and "refused" in str(outcomes[1])
        # The channel goes on: the next publish is confirmed.
        await backend.publish(Message(fine, 3))
    assert await drain(queue, 3) == [1, 2, 3]


async def test_a_publish_that_closes_the_channel_fails_and_the_next_is_confirmed(
    raw, prefix
) -> None:
    exchange = f"{prefix}.exchange"
    topic = f"{prefix}.after"
    async with backend_for(amqp_exchange=exchange) as backend:
        # The exchange vanishes under the hub: the broker closes the channel (404).
        await raw.exchange_delete(exchange)
        with pytest.raises(BackendError, match=r"refused a message.*NOT_FOUND"):
            await backend.publish(Message(topic, 1))
        # Declared again (as the channel reopens, or here): publishing resumes.
        await raw.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await raw.declare_queue(f"{prefix}.after", exclusive=True)
        await queue.bind(exchange, routing_key=topic)
        await backend.publish(Message(topic, 2))
        await backend.publish(Message(topic, 3))
    await raw.exchange_delete(exchange)
    assert await drain(queue, 2) == [2, 3]


async def test_closing_while_confirms_are_pending_neither_hangs_nor_loses_a_publish(
    raw, prefix
) -> None:
    topic = f"{prefix}.close"
    queue = await bound_queue(raw, f"{prefix}.close", topic)
    backend = backend_for()
    await backend.connect()
    await asyncio.gather(*(backend.publish(Message(topic, n)) for n in range(500)))
    # Then 1500 more, written or queued, awaiting their confirms, when the hub closes;
    # and 100 that start as it closes.
    tasks = [asyncio.create_task(backend.publish(Message(topic, n))) for n in range(500, 2000)]
    await asyncio.sleep(0)
    closing = asyncio.create_task(backend.close())
    tasks += [asyncio.create_task(backend.publish(Message(topic, n))) for n in range(2000, 2100)]
    async with asyncio.timeout(TIMEOUT):  # far below moksha.publish_timeout (30 s)
        await closing
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    confirmed = list(range(500)) + [n for n, out in enumerate(outcomes, 500) if out is None]
    failed = [outcome for outcome in outcomes if outcome is not None]
    assert all(isinstance(outcome, BackendUnavailable) for outcome in failed), failed[:3]
    assert len(failed) >= 100  # at least those started as it closed
    # Every publish that returned is on the broker, in order (others may be too).
    assert await drain(queue, len(confirmed)) == confirmed
