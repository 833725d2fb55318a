"""Bridging the Redis bus and AMQP 1.0: plain clients of each see the other's messages once."""

from __future__ import annotations

import asyncio
import json
from uuid import uuid4

import redis.asyncio as aioredis
from proton import Message as AMQPMessage
from proton.utils import BlockingConnection

from moksha.hub import CentralMokshaHub
from support import TIMEOUT, amqp1, amqp1_source, redis_bus

AMQP1 = "amqp://guest:guest@127.0.0.1:5672"


def proton_send(subject: str, body: str) -> None:
    connection = BlockingConnection(AMQP1, timeout=TIMEOUT)
    try:
        message = AMQPMessage(body=body, subject=subject, content_type="application/json")
        connection.create_sender("/exchange/amq.topic").send(message)
    finally:
        connection.close()


class PlainClients:
    """A redis-py subscriber and a proton receiver on ``<prefix>.*``, and what each saw."""

    def __init__(self, pubsub: aioredis.client.PubSub, receiver: object) -> None:
        self.pubsub, self.receiver = pubsub, receiver
        self.on_redis: list[str] = []
        self.on_amqp1: list[str] = []

    async def amqp1_until(self, body: str) -> None:
        while body not in self.on_amqp1:
            incoming = await asyncio.to_thread(self.receiver.receive, TIMEOUT)  # type: ignore[attr-defined]
            await asyncio.to_thread(self.receiver.accept)  # type: ignore[attr-defined]
            data = incoming.body
            self.on_amqp1.append(json.loads(data if isinstance(data, str) else bytes(data)))

    async def redis_until(self, body: str) -> None:
        async with asyncio.timeout(TIMEOUT):
            while body not in self.on_redis:
                item = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if item is not None:
                    self.on_redis.append(json.loads(item["data"]))

    async def both_until(self, body: str) -> None:
        await self.amqp1_until(body)
        await self.redis_until(body)


async def test_redis_and_amqp1_bridged_each_message_once_no_echo():
    prefix = f"bridge13.{uuid4().hex[:12]}"
    async with amqp1_source(f"{prefix}.*") as source:
        await bridged(prefix, source)


async def bridged(prefix: str, source: str) -> None:
    config = {**redis_bus(), **amqp1(), "moksha.backends": "redis, amqp1"}
    plain_redis = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    pubsub = plain_redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe(f"{prefix}.*")
    connection = await asyncio.to_thread(BlockingConnection, AMQP1, timeout=TIMEOUT)
    receiver = await asyncio.to_thread(connection.create_receiver, source)
    plain = PlainClients(pubsub, receiver)
    try:
        async with CentralMokshaHub(config, [], []) as hub:
            await plain_redis.publish(f"{prefix}.redis", json.dumps("from redis"))
            await asyncio.to_thread(proton_send, f"{prefix}.amqp1", json.dumps("from amqp1"))
            await hub.publish(f"{prefix}.hub", "from the hub")
            for body in ("from redis", "from amqp1", "from the hub"):
                await plain.both_until(body)
            # A last message on both paths: an echo of the others would have come before it.
            await hub.publish(f"{prefix}.end", "end")
            await plain.both_until("end")
    finally:
        await asyncio.to_thread(connection.close)
        await pubsub.aclose()
        await plain_redis.aclose()
    expected = ["end", "from amqp1", "from redis", "from the hub"]
    assert sorted(plain.on_amqp1) == expected
    assert sorted(plain.on_redis) == expected
