"""The NATS backend with plain nats-py clients, JetStream groups and cut connections.

The contract (``test_contract*.py``) runs on NATS too, with JetStream (``nats``)
and without (``nats-core``); these are what only NATS has.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import nats
import pytest

from moksha.config import load_config
from moksha.errors import BackendError, BackendUnavailable, MessageError
from moksha.hub.backends.base import DEAD_LETTER_HEADER, DEAD_LETTER_REASON_HEADER
from moksha.hub.backends.nats import NATSBackend
from moksha.message import Message
from support import BACKENDS, SPACE, TIMEOUT, Received, free_endpoint, until
from tcp_proxy import TcpProxy


def backend(**more: Any) -> NATSBackend:
    settings = {**BACKENDS["nats"](), **more}
    return NATSBackend(load_config(overrides=settings, environ={}, search=False))


@pytest.fixture
def prefix() -> str:
    return f"{SPACE}.nats.{uuid4().hex[:12]}"


@pytest.fixture
def group() -> str:
    return f"test.nats.{uuid4().hex[:12]}"


@pytest.fixture
async def bus() -> AsyncIterator[NATSBackend]:
    async with backend() as connected:
        yield connected


@pytest.fixture
async def plain() -> AsyncIterator[nats.NATS]:
    """A plain nats-py connection, as any other NATS program would have."""
    BACKENDS["nats"]()  # skips (or fails in CI) without a server
    nc = await nats.connect("nats://127.0.0.1:4222")
    yield nc
    await nc.close()


async def cleanup(bus: NATSBackend, group: str) -> None:
    """Stop the bus's groups, then delete the group's durable consumers."""
    await bus.close()
    for queue in await bus.durable_queues():
        if queue.group == group:
            await bus.delete_durable_queue(queue.name)


async def test_a_plain_client_publishing_reaches_a_pattern(bus, plain, prefix):
    """No headers at all (a plain client): still a message, with AMQP's pattern meaning."""
    received = Received()
    await bus.subscribe([f"{prefix}.#.temp"], received)
    await plain.publish(f"{prefix}.kitchen.temp", json.dumps({"celsius": 21.5}).encode())
    await plain.publish(f"{prefix}.kitchen.humidity", b"60")
    await plain.publish(f"{prefix}.temp", b"raw \xff")
    first, second = await received.wait(2)
    assert (first.topic, first.body, first.headers) == (
        f"{prefix}.kitchen.temp",
        {"celsius": 21.5},
        {},
    )
    assert (second.topic, second.payload) == (f"{prefix}.temp", b"raw \xff")


async def test_a_plain_subscriber_gets_the_subject_json_and_headers(bus, plain, prefix):
    got: asyncio.Queue[Any] = asyncio.Queue()
    await plain.subscribe(f"{prefix}.>", cb=got.put)
    await plain.flush()
    sent = Message(f"{prefix}.a.b", {"n": 1, "text": "héllo"}, headers={"h": "v ✓"})
    await bus.publish(sent)
    msg = await asyncio.wait_for(got.get(), TIMEOUT)
    assert msg.subject == f"{prefix}.a.b"
    assert json.loads(msg.data) == {"n": 1, "text": "héllo"}
    assert (msg.headers["h"], msg.headers["moksha-id"]) == ("v ✓", sent.id)


async def test_a_group_gets_what_was_published_while_no_hub_ran(bus, prefix, group):
    first = Received()
    subscription = await bus.subscribe([f"{prefix}.job"], first, group=group)
    await bus.publish(Message(f"{prefix}.job", "before"))
    await first.wait(1)
    await subscription.cancel()
    try:
        for i in range(3):
            await bus.publish(Message(f"{prefix}.job", i))  # kept by JetStream for the group
        async with backend() as restarted:
            again = Received()
            await restarted.subscribe([f"{prefix}.job"], again, group=group)
            assert [m.body for m in await again.wait(3)] == [0, 1, 2]
    finally:
        await cleanup(bus, group)


async def test_hubs_of_one_group_share_its_messages(prefix, group):
    one, two = Received(), Received()
    async with backend() as a, backend() as b:
        await a.subscribe([f"{prefix}.job"], one, group=group)
        await b.subscribe([f"{prefix}.job"], two, group=group)
        total = 200
        for i in range(total):
            await a.publish(Message(f"{prefix}.job", i))
        await until(lambda: len(one.messages) + len(two.messages) >= total)
        assert sorted(one.bodies + two.bodies) == list(range(total))
        await b.close()
        await cleanup(a, group)


async def test_a_backlog_of_many_batches_arrives_in_order_and_is_all_acknowledged(prefix, group):
    async with backend() as bus:
        await (await bus.subscribe([f"{prefix}.job"], Received(), group=group)).cancel()
        for i in range(100):  # kept for the group while nobody reads it
            await bus.publish(Message(f"{prefix}.job", i))
    received = Received()
    async with backend(nats_inflight=8) as restarted:  # a dozen pull requests at least
        try:
            subscription = await restarted.subscribe([f"{prefix}.job"], received, group=group)
            assert [m.body for m in await received.wait(100)] == list(range(100))
            async with asyncio.timeout(TIMEOUT):  # every one acknowledged: none left
                while await subscription.waiting():
                    await asyncio.sleep(0.01)
        finally:
            await cleanup(restarted, group)


async def test_a_stopping_hub_hands_back_what_it_fetched_at_once(prefix, group):
    inside = asyncio.Event()

    async def stuck(message: Message) -> None:
        inside.set()
        await asyncio.Event().wait()  # never finishes: the hub stops under it

    slow = {"nats_ack_wait": 60.0, "nats_inflight": 10}  # far beyond the wait below
    async with backend(**slow) as other:
        try:
            async with backend(**slow) as first:
                await first.subscribe([f"{prefix}.job"], stuck, group=group)
                for i in range(10):
                    await first.publish(Message(f"{prefix}.job", i))
                await asyncio.wait_for(inside.wait(), TIMEOUT)
            received = Received()
            await other.subscribe([f"{prefix}.job"], received, group=group)
            assert sorted(m.body for m in await received.wait(10)) == list(range(10))
        finally:
            await cleanup(other, group)


async def test_after_nats_max_deliver_a_message_is_dead_lettered_with_the_reason(
    bus, prefix, group
):
    """Without a hub's own retries (a bare handler), JetStream redelivers, then gives up."""
    calls: list[int] = []
    dead = Received()

    async def failing(message: Message) -> None:
        calls.append(1)
        raise RuntimeError("broken")

    async with backend(nats_max_deliver=3, **{"moksha.retry_delay": 0.05}) as tight:
        await tight.subscribe([f"{prefix}.job.dead"], dead)
        await tight.subscribe([f"{prefix}.job"], failing, group=group)
        await tight.publish(Message(f"{prefix}.job", {"n": 1}, headers={"h": "v"}))
        [letter] = await dead.wait(1)
        assert len(calls) == 3
        assert letter.body == {"n": 1}
        assert letter.headers[DEAD_LETTER_HEADER] == f"{prefix}.job"
        assert "delivered 3 times" in letter.headers[DEAD_LETTER_REASON_HEADER]
        assert "RuntimeError: broken" in letter.headers[DEAD_LETTER_REASON_HEADER]
        await cleanup(tight, group)


async def test_moksha_queues_lists_a_groups_consumer_and_deletes_it_once_no_hub_runs(
    bus, prefix, group
):
    subscription = await bus.subscribe([f"{prefix}.job", f"{prefix}.x.#"], Received(), group=group)
    [queue] = [q for q in await bus.durable_queues() if q.group == group]
    assert queue.patterns == (f"{prefix}.job", f"{prefix}.x.#")
    await subscription.cancel()
    await bus.publish(Message(f"{prefix}.job", "waits"))
    [queue] = [q for q in await bus.durable_queues() if q.group == group]
    assert (queue.depth, queue.consumers) == (1, 0)
    await bus.delete_durable_queue(queue.name)
    assert [q for q in await bus.durable_queues() if q.group == group] == []
    with pytest.raises(BackendError, match="not a consumer Moksha keeps"):
        await bus.delete_durable_queue("someone_else")


async def test_a_group_beyond_the_streams_subjects_is_refused_with_the_key(bus):
    with pytest.raises(BackendError, match="nats_stream_subjects"):
        await bus.subscribe(["elsewhere.#"], Received(), group="test.nats.outside")


async def test_bad_topics_and_a_dead_server_read_as_sentences(bus):
    with pytest.raises(MessageError, match="cannot travel on NATS"):
        await bus.publish(Message("a..b", 1))
    with pytest.raises(MessageError, match="cannot travel on NATS"):
        await bus.publish(Message("a.b c", 1))
    nobody = free_endpoint().replace("tcp://", "nats://")
    with pytest.raises(BackendUnavailable, match="cannot reach the NATS server"):
        async with backend(nats_url=nobody):
            pass


async def test_every_message_is_consumed_despite_cut_connections(prefix, group):
    received = Received()
    async with TcpProxy(4222) as proxy:
        url = f"nats://127.0.0.1:{proxy.port}"
        fast = {"moksha.reconnect_delay": 0.1, "nats_ack_wait": 2.0}
        async with backend(nats_url=url, **fast) as consumer, backend(**fast) as publisher:
            await consumer.subscribe([f"{prefix}.n"], received, group=group)
            for i in range(300):
                if i % 100 == 50:
                    await proxy.cut()  # the consumer's connection, mid-stream
                await publisher.publish(Message(f"{prefix}.n", i))
            await until(lambda: set(received.bodies) == set(range(300)), timeout=3 * TIMEOUT)
            await cleanup(consumer, group)
    assert proxy.connections_made >= 4


def test_the_subject_mapping_examples_hold() -> None:
    import doctest

    from moksha.hub.backends import nats_wire

    assert doctest.testmod(nats_wire).failed == 0
