"""Several backends at once: each message reaches consumers and every other backend once.

The hub speaks AMQP (RabbitMQ), ZeroMQ and the memory bus together.  Plain
clients stand for the rest of the world: a raw aio-pika queue sees what
reaches RabbitMQ, a raw SUB sees what the hub publishes on ZeroMQ, and a raw
PUB the hub subscribes to injects foreign ZeroMQ messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
from functools import partial
from uuid import uuid4

import aio_pika
import pytest
import zmq
import zmq.asyncio

from moksha.hub import ORIGIN_HEADER, CentralMokshaHub
from moksha.hub.api import Consumer
from moksha.hub.hub import group_name
from support import TIMEOUT, free_endpoint, require_service

BROKER = "amqp://guest:guest@127.0.0.1:5672/"


class World:
    """The plain clients around the hub, and what each has seen."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.hub_endpoint = free_endpoint()
        self.foreign_endpoint = free_endpoint()
        self.seen: dict[str, list[str]] = {"consumer": [], "amqp": [], "zmq": []}
        self.changed = asyncio.Event()

    def record(self, where: str, body: str) -> None:
        self.seen[where].append(body)
        self.changed.set()

    async def until(self, where: str, body: str) -> None:
        async with asyncio.timeout(TIMEOUT):
            while body not in self.seen[where]:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def world():
    require_service("RabbitMQ", 5672)
    world = World(f"bridge.{uuid4().hex[:12]}")
    context = zmq.asyncio.Context()
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind("amq.topic", routing_key=f"{world.prefix}.#")
        await queue.consume(partial(_ack_and_record, world))
        world.amqp = channel
        world.sub = context.socket(zmq.SUB)
        world.sub.connect(world.hub_endpoint)
        world.sub.subscribe(world.prefix.encode())
        world.pub = context.socket(zmq.XPUB)
        world.pub.bind(world.foreign_endpoint)
        reader = asyncio.create_task(_read_zmq(world))
        try:
            yield world
        finally:
            reader.cancel()
            world.sub.close(0)
            world.pub.close(0)
            context.term()


async def _ack_and_record(world: World, message: aio_pika.abc.AbstractIncomingMessage) -> None:
    await message.ack()
    world.record("amqp", json.loads(message.body))


async def _read_zmq(world: World) -> None:
    while True:
        frames = await world.sub.recv_multipart()
        world.record("zmq", json.loads(frames[1]))


def recorder(world: World) -> type[Consumer]:
    class Recorder(Consumer):
        topic = f"{world.prefix}.#"

        def consume(self, message):
            world._loop.call_soon_threadsafe(world.record, "consumer", message.body)

    return Recorder


async def test_each_message_reaches_consumers_and_other_backends_once(world):
    world._loop = asyncio.get_running_loop()
    config = {
        "moksha.backends": "amqp, zeromq, memory",
        "amqp_broker": BROKER,
        "zmq_enabled": True,
        "zmq_publish_endpoints": world.hub_endpoint,
        "zmq_subscribe_endpoints": world.foreign_endpoint,
        "zmq_metadata_frame": True,  # bridging needs ids and the moksha-origin header
    }
    consumer = recorder(world)
    async with CentralMokshaHub(config, [consumer], []) as hub:
        # The hub's SUB subscribes to everything (its bridge): wait until the
        # foreign publisher has heard it, so nothing it sends is lost.
        async with asyncio.timeout(TIMEOUT):
            await world.pub.recv()
        # Likewise until the raw SUB's subscription reached the hub's publisher.
        async with asyncio.timeout(TIMEOUT):
            while not world.seen["zmq"]:
                await hub.publish(f"{world.prefix}.warmup", "warmup")
                await asyncio.sleep(0.05)
        for where in world.seen:
            await world.until(where, "warmup")
            world.seen[where].clear()

        # 1. Published by the hub: to every backend, consumed once.
        await hub.publish(f"{world.prefix}.hub", "from the hub")
        # 2. Published on RabbitMQ by someone else: bridged to ZeroMQ.
        exchange = await world.amqp.get_exchange("amq.topic")
        await exchange.publish(
            aio_pika.Message(json.dumps("from amqp").encode()), routing_key=f"{world.prefix}.amqp"
        )
        # 3. Published on ZeroMQ by someone else, in the original two frames: bridged to RabbitMQ.
        await world.pub.send_multipart([f"{world.prefix}.zmq".encode(), b'"from zmq"'])

        await world.until("consumer", "from the hub")
        await world.until("consumer", "from amqp")
        await world.until("consumer", "from zmq")
        await world.until("zmq", "from amqp")
        await world.until("amqp", "from zmq")
        # A last message through every path: anything echoing would have come before it.
        await hub.publish(f"{world.prefix}.last", "last")
        for where in world.seen:
            await world.until(where, "last")

    await world.amqp.queue_delete(f"moksha.{group_name(consumer)}")
    assert sorted(world.seen["consumer"]) == ["from amqp", "from the hub", "from zmq", "last"]
    assert sorted(world.seen["amqp"]) == ["from amqp", "from the hub", "from zmq", "last"]
    # The foreign ZeroMQ message came from ZeroMQ: it is not sent back there.
    assert sorted(world.seen["zmq"]) == ["from amqp", "from the hub", "last"]


def test_a_hub_with_one_backend_does_not_mark_its_messages(memory_config):
    received = []
    with CentralMokshaHub(memory_config, [], []) as hub:
        hub.subscribe("t", received.append)
        hub.send_message("t", 1)
    assert ORIGIN_HEADER not in received[0].headers


@pytest.mark.parametrize("metadata", [False, True])
async def test_bridging_zeromq_without_its_metadata_frame_is_warned_about(metadata, caplog):
    endpoint = free_endpoint()
    config = {
        "moksha.backends": "zeromq, memory",
        "zmq_enabled": True,
        "zmq_publish_endpoints": endpoint,
        "zmq_subscribe_endpoints": endpoint,
        "zmq_metadata_frame": metadata,
    }
    with caplog.at_level(logging.WARNING, logger="moksha.hub"):
        async with CentralMokshaHub(config, [], []):
            pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if metadata:
        assert warnings == []
    else:
        [warning] = warnings
        assert "bridging zeromq" in warning
        assert "zmq_metadata_frame = true" in warning
