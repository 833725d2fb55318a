"""A hub on MQTT or NATS and on AMQP at once bridges them, each message once, no echo.

Plain clients on each side: a paho-mqtt device or a nats-py program on one,
an aio-pika queue and publisher on RabbitMQ on the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import uuid4

import aio_pika
import nats
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from moksha.hub import CentralMokshaHub
from support import BACKENDS, SPACE, TIMEOUT, require_service, until

RABBIT = "amqp://guest:guest@127.0.0.1:5672/"


class Plain:
    """One bus's plain client: publishes a topic, records what it receives on the prefix."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.publish: Callable[[str, Any], Awaitable[None]]


@pytest.fixture
async def rabbit(prefix: str) -> AsyncIterator[Plain]:
    require_service("RabbitMQ", 5672)
    plain = Plain()
    async with await aio_pika.connect(RABBIT) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind("amq.topic", routing_key=f"{prefix}.#")

        async def record(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            plain.seen.append(json.loads(message.body))

        await queue.consume(record)
        exchange = await channel.get_exchange("amq.topic")

        async def publish(topic: str, body: Any) -> None:
            message = aio_pika.Message(json.dumps(body).encode())
            await exchange.publish(message, routing_key=topic, mandatory=False)

        plain.publish = publish
        yield plain


@contextlib.asynccontextmanager
async def mqtt_side(prefix: str) -> AsyncIterator[Plain]:
    plain = Plain()
    loop = asyncio.get_running_loop()
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    subscribed = asyncio.Event()
    client.on_message = lambda _c, _u, m: loop.call_soon_threadsafe(
        plain.seen.append, json.loads(m.payload)
    )
    client.on_subscribe = lambda *_: loop.call_soon_threadsafe(subscribed.set)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    client.subscribe(prefix.replace(".", "/") + "/#", qos=1)
    await asyncio.wait_for(subscribed.wait(), TIMEOUT)

    async def publish(topic: str, body: Any) -> None:
        info = client.publish(topic.replace(".", "/"), json.dumps(body), qos=1)
        await asyncio.to_thread(info.wait_for_publish, TIMEOUT)

    plain.publish = publish
    try:
        yield plain
    finally:
        client.disconnect()
        client.loop_stop()


@contextlib.asynccontextmanager
async def nats_side(prefix: str) -> AsyncIterator[Plain]:
    plain = Plain()
    nc = await nats.connect("nats://127.0.0.1:4222")

    async def record(msg: Any) -> None:
        plain.seen.append(json.loads(msg.data))

    await nc.subscribe(f"{prefix}.>", cb=record)
    await nc.flush()

    async def publish(topic: str, body: Any) -> None:
        await nc.publish(topic, json.dumps(body).encode())
        await nc.flush()

    plain.publish = publish
    try:
        yield plain
    finally:
        await nc.close()


SIDES = {"mqtt": mqtt_side, "nats": nats_side}


@pytest.fixture
def prefix() -> str:
    return f"{SPACE}.bridge.{uuid4().hex[:10]}"  # within the NATS test stream's subjects


@pytest.mark.parametrize("bus", sorted(SIDES))
async def test_a_hub_on_two_buses_bridges_each_message_once_without_echo(bus, prefix, rabbit):
    settings = {**BACKENDS[bus](), "amqp_broker": RABBIT, "moksha.backends": f"{bus} amqp"}
    async with SIDES[bus](prefix) as device, CentralMokshaHub(settings, [], []) as hub:
        # 1. A device on the bus: reaches RabbitMQ once.
        await device.publish(f"{prefix}.kitchen.temp", {"from": bus})
        await until(lambda: {"from": bus} in rabbit.seen)
        # 2. A plain AMQP program: reaches the bus once.
        await rabbit.publish(f"{prefix}.office.temp", {"from": "amqp"})
        await until(lambda: {"from": "amqp"} in device.seen)
        # 3. The hub itself publishes: both buses once (it published to each).
        await hub.publish(f"{prefix}.hub", {"from": "hub"})
        await until(lambda: {"from": "hub"} in device.seen and {"from": "hub"} in rabbit.seen)
        # A marker through each side: had anything echoed, it would have come first.
        await device.publish(f"{prefix}.end", "end")
        await until(lambda: "end" in rabbit.seen)
        await rabbit.publish(f"{prefix}.end", "end2")
        await until(lambda: "end2" in device.seen)
    assert sorted(map(json.dumps, rabbit.seen)) == sorted(
        map(json.dumps, [{"from": bus}, {"from": "amqp"}, {"from": "hub"}, "end", "end2"])
    )
    assert sorted(map(json.dumps, device.seen)) == sorted(
        map(json.dumps, [{"from": bus}, {"from": "amqp"}, {"from": "hub"}, "end", "end2"])
    )
