"""A STOMP group's durable queue after its consumer moved to another topic (RabbitMQ).

STOMP cannot remove the old binding; what arrives through it must still never
reach the handler: it is dead-lettered, with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import aio_pika
import pytest
from test_stomp import AMQP, backend_for

from moksha.hub.backends.stomp_subscription import DEAD_LETTER_LIMIT, GROUP_QUEUE_PREFIX
from moksha.message import Message
from support import RUN, TIMEOUT, Received, require_service


@pytest.fixture
async def raw() -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    require_service("RabbitMQ STOMP", 61613)
    require_service("RabbitMQ", 5672)
    async with await aio_pika.connect(AMQP) as connection:
        yield await connection.channel()


@pytest.fixture
async def queue(raw: aio_pika.abc.AbstractChannel) -> AsyncIterator[str]:
    """A group's name; its queue and dead letters are deleted at teardown."""
    group = f"test-{RUN}-{uuid4().hex[:8]}"
    yield group
    await raw.queue_delete(GROUP_QUEUE_PREFIX + group)
    await raw.queue_delete(f"{GROUP_QUEUE_PREFIX}{group}:dead-letter")


async def test_messages_of_a_removed_pattern_are_dead_lettered_not_consumed(
    raw: aio_pika.abc.AbstractChannel, queue: str
) -> None:
    group, topic = queue, f"test.stomp.{RUN}.{uuid4().hex[:8]}"
    async with backend_for() as backend:
        subscription = await backend.subscribe([f"{topic}.old"], Received(), group=group)
        await subscription.cancel()
        for n in range(2):
            await backend.publish(Message(f"{topic}.old", n))
    received = Received()
    async with backend_for(stomp_ack_mode="client-individual") as backend:
        await backend.subscribe([f"{topic}.new"], received, group=group)
        await backend.publish(Message(f"{topic}.new", "new"))
        await received.wait(1)  # after the two old ones, in queue order
    assert received.bodies == ["new"]
    dead = await raw.declare_queue(f"{GROUP_QUEUE_PREFIX}{group}:dead-letter", passive=True)
    letters = [await dead.get(no_ack=True, timeout=5) for _ in range(2)]
    assert [letter.body for letter in letters] == [b"0", b"1"]
    for letter in letters:
        assert letter.headers["moksha-dead-letter"] == f"{topic}.old"
        assert f"{topic}.new" in str(letter.headers["moksha-dead-letter-reason"])
    # Bounded: declaring it with other arguments would fail (PRECONDITION_FAILED).
    bound = {"x-max-length": DEAD_LETTER_LIMIT}
    await raw.declare_queue(dead.name, durable=True, arguments=bound)


async def test_with_stomp_amqp_url_the_old_binding_goes_and_moksha_lists_the_queue(
    raw: aio_pika.abc.AbstractChannel, queue: str
) -> None:
    group, topic = queue, f"test.stomp.{RUN}.{uuid4().hex[:8]}"
    name = GROUP_QUEUE_PREFIX + group
    follows = {"stomp_amqp_url": AMQP}
    async with backend_for(**follows) as backend:
        subscription = await backend.subscribe([f"{topic}.old"], Received(), group=group)
        await subscription.cancel()
        await backend.publish(Message(f"{topic}.old", "queued"))
    assert await ready(raw, name) == 1
    received = Received()
    async with backend_for(stomp_ack_mode="client-individual", **follows) as backend:
        await backend.subscribe([f"{topic}.new"], received, group=group)
        [listed] = [q for q in await backend.durable_queues() if q.name == name]
        assert listed.patterns == (f"{topic}.new",) and listed.consumers == 1
        await backend.publish(Message(f"{topic}.new", "new"))
        await received.wait(1)
        assert received.bodies == ["new"]  # the queued old one was dead-lettered
    async with backend_for(**follows) as backend:
        await backend.publish(Message(f"{topic}.old", "lands nowhere"))
        await backend.publish(Message(f"{topic}.new", "waits"))
    assert await ready(raw, name) == 1
    assert await ready(raw, f"{name}:dead-letter") == 1
    async with backend_for(**follows) as backend:
        await backend.delete_durable_queue(name)
        assert name not in [q.name for q in await backend.durable_queues()]


async def ready(raw: aio_pika.abc.AbstractChannel, name: str) -> int:
    declared = await raw.declare_queue(name, passive=True)
    return declared.declaration_result.message_count or 0


async def test_two_releases_share_the_union_and_each_handles_only_its_topics(
    raw: aio_pika.abc.AbstractChannel, queue: str
) -> None:
    group, topic = queue, f"test.stomp.{RUN}.{uuid4().hex[:8]}"
    name = GROUP_QUEUE_PREFIX + group
    old, new = f"{topic}.old", f"{topic}.new"
    settings = {"stomp_amqp_url": AMQP, "stomp_ack_mode": "client-individual"}
    got1, got2 = Received(), Received()
    async with backend_for(**settings) as release1, backend_for(**settings) as release2:
        first = await release1.subscribe([old], got1, group=group)
        await release2.subscribe([new], got2, group=group)
        [listed] = [q for q in await release2.durable_queues() if q.name == name]
        assert listed.patterns == (new, old)
        for n in range(10):
            await release2.publish(Message(old, n))
            await release2.publish(Message(new, n))

        async def settled() -> int:
            dead = await ready(raw, f"{name}:dead-letter") if await has_dead_letters(name) else 0
            return len(got1.messages) + len(got2.messages) + dead

        async with asyncio.timeout(TIMEOUT):
            while await settled() < 20:
                await asyncio.sleep(0.02)
        assert {m.topic for m in got1.messages} <= {old}
        assert {m.topic for m in got2.messages} <= {new}
        await first.cancel()  # the old release stops; the new one runs on
        [listed] = [q for q in await release2.durable_queues() if q.name == name]
        assert listed.patterns == (new,)


async def has_dead_letters(name: str) -> bool:
    """Whether the dead-letter queue of group queue ``name`` exists."""
    async with await aio_pika.connect(AMQP) as connection:
        probe = await connection.channel()
        try:
            await probe.declare_queue(f"{name}:dead-letter", passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        return True
