"""The Redis bus beyond the contract: plain clients both ways, groups, claims, dead letters."""

from __future__ import annotations

import asyncio
import doctest
import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
import redis.asyncio as aioredis

import moksha.hub.backends.redis_wire
from moksha.config import load_config
from moksha.errors import BackendError
from moksha.hub.backends.redis_bus import RedisBusBackend
from moksha.message import Message
from support import REDIS_PREFIX, TIMEOUT, Received, redis_bus, until
from tcp_proxy import TcpProxy

URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def settings() -> dict[str, Any]:
    return {**redis_bus(), "redis_bus_prefix": f"{REDIS_PREFIX}{uuid4().hex[:8]}:"}


@pytest.fixture
def prefix() -> str:
    return f"redis.{uuid4().hex[:12]}"


@pytest.fixture
async def plain() -> AsyncIterator[aioredis.Redis]:
    """A plain redis-py client, as a program that knows nothing of Moksha."""
    client = aioredis.Redis.from_url(URL)
    yield client
    await client.aclose()


def backend(settings: dict[str, Any], **more: Any) -> RedisBusBackend:
    return RedisBusBackend(load_config(overrides={**settings, **more}, environ={}, search=False))


def test_the_wire_module_examples_hold() -> None:
    assert doctest.testmod(moksha.hub.backends.redis_wire).failed == 0


async def test_a_plain_subscriber_reads_the_body_and_a_plain_publish_is_a_message(
    settings, prefix, plain
):
    pubsub = plain.pubsub()
    await pubsub.subscribe(f"{prefix}.out")
    assert (await pubsub.get_message(timeout=TIMEOUT))["type"] == "subscribe"
    async with backend(settings) as bus:
        received = Received()
        await bus.subscribe([f"{prefix}.in.*"], received)
        await bus.publish(Message(f"{prefix}.out", {"from": "moksha ✓"}, headers={"h": "v"}))
        item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=TIMEOUT)
        assert json.loads(item["data"]) == {"from": "moksha ✓"}  # exactly the body

        await plain.publish(f"{prefix}.in.x", json.dumps({"from": "redis-py"}))
        await plain.publish(f"{prefix}.in.x.deeper", "no: * is one word")
        await bus.publish(Message(f"{prefix}.in.end", "end"))
        await received.wait(2)
    await pubsub.aclose()
    first, last = received.messages
    assert (first.topic, first.body, first.headers) == (f"{prefix}.in.x", {"from": "redis-py"}, {})
    assert first.id  # given on arrival
    assert last.body == "end"


async def test_a_hash_pattern_gets_each_message_once_with_its_headers(settings, prefix):
    async with backend(settings) as bus:
        received = Received()
        await bus.subscribe(["#"], received)  # the glob * also matches the meta channels
        sent = Message(f"{prefix}.a.b", 1, headers={"k": "v"})
        await bus.publish(sent)
        await bus.publish(Message(f"{prefix}.end", "end"))
        ours = lambda: [m for m in received.messages if m.topic.startswith(prefix)]  # noqa: E731
        await until(lambda: len(ours()) >= 2)
    first, last = ours()
    assert (first.id, first.headers, first.body) == (sent.id, {"k": "v"}, 1)
    assert last.body == "end"


async def test_a_publisher_appends_for_a_group_from_the_moment_it_starts(settings, prefix):
    async with backend(settings) as publisher, backend(settings) as consumer:
        received = Received()
        await consumer.subscribe([f"{prefix}.job"], received, group="late")
        await until(lambda: publisher.appending)  # announced, not polled
        await publisher.publish(Message(f"{prefix}.job", "kept"))
        [message] = await received.wait(1)
    assert message.body == "kept"


async def test_group_entries_are_plain_stream_fields_both_ways(settings, prefix, plain):
    stream = f"{settings['redis_bus_prefix']}stream"
    async with backend(settings) as bus:
        received = Received()
        await bus.subscribe([f"{prefix}.*"], received, group="g")
        sent = Message(f"{prefix}.a", {"n": 1}, headers={"h": "v"})
        await bus.publish(sent)
        [(_, fields)] = await plain.xrange(stream)
        assert fields[b"topic"] == f"{prefix}.a".encode()
        assert json.loads(fields[b"body"]) == {"n": 1}
        assert (fields[b"id"], fields[b"h:h"]) == (sent.id.encode(), b"v")

        await plain.xadd(stream, {"topic": f"{prefix}.b", "body": '{"from": "redis-py"}'})
        await received.wait(2)
    first, second = received.messages
    assert (first.id, first.headers, first.body) == (sent.id, {"h": "v"}, {"n": 1})
    assert (second.topic, second.body) == (f"{prefix}.b", {"from": "redis-py"})


async def test_hubs_of_one_group_share_the_work_each_message_once(settings, prefix):
    one, two = Received(), Received()
    async with backend(settings) as first, backend(settings) as second:
        await first.subscribe([f"{prefix}.job"], one, group="workers")
        await second.subscribe([f"{prefix}.job"], two, group="workers")
        for i in range(100):
            await first.publish(Message(f"{prefix}.job", i))
        await until(lambda: len(one.messages) + len(two.messages) >= 100)
    bodies = one.bodies + two.bodies
    assert sorted(bodies) == list(range(100))
    assert one.messages and two.messages  # both took a share


async def test_messages_wait_for_a_group_while_no_hub_runs(settings, prefix):
    async with backend(settings) as bus:
        subscription = await bus.subscribe([f"{prefix}.job"], Received(), group="later")
        await subscription.cancel()
        await bus.publish(Message(f"{prefix}.job", "kept"))
    received = Received()
    async with backend(settings) as bus:
        [queue] = await bus.durable_queues()
        assert (queue.name, queue.depth, queue.patterns) == ("later", 1, (f"{prefix}.job",))
        await bus.subscribe([f"{prefix}.job"], received, group="later")
        [message] = await received.wait(1)
    assert message.body == "kept"


async def test_an_entry_never_acked_is_claimed_again_then_dead_lettered(settings, prefix):
    attempts: list[Any] = []

    async def failing(message: Message) -> None:
        attempts.append(message.body)
        raise RuntimeError("not today")

    dead = Received()
    limits = {"redis_bus_claim_idle": 0.2, "redis_bus_max_deliveries": 2}
    async with backend(settings, **limits) as bus:
        await bus.subscribe([f"{prefix}.job"], failing, group="failing")
        await bus.subscribe([f"{prefix}.job.dead"], dead)
        await bus.publish(Message(f"{prefix}.job", {"n": 1}))
        [letter] = await dead.wait(1, timeout=3 * TIMEOUT)
        async with asyncio.timeout(TIMEOUT):  # acknowledged once dead-lettered
            while (await bus.durable_queues())[0].depth:
                await asyncio.sleep(0.01)
    assert attempts == [{"n": 1}, {"n": 1}]
    assert letter.body == {"n": 1}
    assert letter.headers["moksha-dead-letter"] == f"{prefix}.job"
    assert "delivered 3 times" in letter.headers["moksha-dead-letter-reason"]


async def test_an_orderly_stop_hands_back_what_was_in_hand(settings, prefix):
    inside = asyncio.Event()

    async def stuck(message: Message) -> None:
        inside.set()
        await asyncio.Event().wait()  # never finishes: the hub stops under it

    async with backend(settings) as bus:
        await bus.subscribe([f"{prefix}.job"], stuck, group="handover")
        await bus.publish(Message(f"{prefix}.job", "in hand"))
        await asyncio.wait_for(inside.wait(), TIMEOUT)
    received = Received()
    async with backend(settings) as bus:
        await bus.subscribe([f"{prefix}.job"], received, group="handover")
        [message] = await received.wait(1)  # at once, not after redis_bus_claim_idle
    assert message.body == "in hand"


async def test_handled_entries_are_acknowledged_while_running_and_on_a_stop(settings, prefix):
    async def depth(bus: RedisBusBackend) -> int:
        [queue] = await bus.durable_queues()
        return queue.depth

    running, stopped = Received(), Received()
    async with backend(settings) as bus:
        await bus.subscribe([f"{prefix}.job"], running, group="acked")
        for i in range(50):
            await bus.publish(Message(f"{prefix}.job", i))
        await running.wait(50)
        async with asyncio.timeout(TIMEOUT):  # acknowledged with the reads that follow
            while await depth(bus):
                await asyncio.sleep(0.01)
    async with backend(settings) as bus:
        await bus.subscribe([f"{prefix}.job"], stopped, group="acked")
        for i in range(50, 100):
            await bus.publish(Message(f"{prefix}.job", i))
        await stopped.wait(50)
    async with backend(settings) as bus:  # stopped right after the last: acknowledged then
        assert await depth(bus) == 0
    assert sorted(running.bodies + stopped.bodies) == list(range(100))


async def test_a_group_is_deleted_only_when_moksha_made_it_and_nobody_reads_it(settings, prefix):
    async with backend(settings) as bus:
        await bus.subscribe([f"{prefix}.job"], Received(), group="mine")
        with pytest.raises(BackendError, match="not a consumer group Moksha created"):
            await bus.delete_durable_queue("someone-else")
        with pytest.raises(BackendError, match="a hub is reading"):
            await bus.delete_durable_queue("mine")
    idle = backend(settings, redis_bus_claim_idle=0.001)
    await asyncio.sleep(0.01)  # the consumer's idle time must pass 1 ms: a clock, not a sync
    await idle.delete_durable_queue("mine")
    assert await idle.durable_queues() == []


async def test_an_unreachable_server_is_a_clear_error(settings):
    from moksha.errors import BackendUnavailable

    bus = backend(settings, redis_bus_url="redis://:s3cret@127.0.0.1:1/0")
    with pytest.raises(BackendUnavailable, match=r"cannot reach 127\.0\.0\.1:1/0") as raised:
        await bus.connect()
    assert "s3cret" not in str(raised.value)


async def test_after_a_cut_fan_out_resubscribes_and_a_group_gets_what_it_missed(settings, prefix):
    async with TcpProxy(6379) as proxy:
        proxied = backend(settings, redis_bus_url=f"redis://127.0.0.1:{proxy.port}/0")
        async with proxied as bus, backend(settings) as direct:
            fanned, grouped = Received(), Received()
            await bus.subscribe([f"{prefix}.fan"], fanned)
            await bus.subscribe([f"{prefix}.job"], grouped, group="cut")
            await until(lambda: direct.appending)  # the group's announcement reached it
            proxy.refuse = True
            await proxy.cut()
            # Published while the hub is cut off: kept in the stream for its group.
            await direct.publish(Message(f"{prefix}.job", "while away"))
            proxy.refuse = False
            [message] = await grouped.wait(1, timeout=3 * TIMEOUT)
            assert message.body == "while away"
            await fanned.resend_until_one(lambda: direct.publish(Message(f"{prefix}.fan", 1)))
            await bus.publish(Message(f"{prefix}.fan", 2))  # its publishing connection too
            await fanned.wait(2)
    assert proxy.connections_made > 2  # the connections were made again
