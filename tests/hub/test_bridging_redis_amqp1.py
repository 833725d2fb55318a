"""Bridging the Redis bus and AMQP 1.0: plain clients of each see the other's messages once."""

from __future__ import annotations

import asyncio
import json
from uuid import uuid4

import redis.asyncio as aioredis
from proton import Message as AMQPMessage
from proton.utils import BlockingConnection

from moksha.hub import CentralMokshaHub
from support import TIMEOUT, amqp1, redis_bus

AMQP1 = "amqp://guest:guest@127.0.0.1:5672"


def proton_send(subject: str, body: str) -> None:
    connection = BlockingConnection(AMQP1, timeout=TIMEOUT)
    try:
        message = AMQPMessage(body=body, subject=subject, content_type="application/json")
        connection.create_sender("/exchange/amq.topic").send(message)
    finally:
        connection.close()


async def test_redis_and_amqp1_bridged_each_message_once_no_echo():
    prefix = f"bridge13.{uuid4().hex[:12]}"
    config = {**redis_bus(), **amqp1(), "moksha.backends": "redis, amqp1"}
    plain_redis = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    pubsub = plain_redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe(f"{prefix}.*")
    connection = await asyncio.to_thread(BlockingConnection, AMQP1, timeout=TIMEOUT)
    receiver = await asyncio.to_thread(connection.create_receiver, f"/topic/{prefix}.*")
    try:
        async with CentralMokshaHub(config, [], []) as hub:
            await plain_redis.publish(f"{prefix}.redis", json.dumps("from redis"))
            await asyncio.to_thread(proton_send, f"{prefix}.amqp1", json.dumps("from amqp1"))
            await hub.publish(f"{prefix}.last", "last")
            everything = {"from redis", "from amqp1", "last"}
            on_amqp1: list[str] = []
            on_redis: list[str] = []

            async def amqp1_until(body: str) -> None:
                while body not in on_amqp1:
                    incoming = await asyncio.to_thread(receiver.receive, TIMEOUT)
                    await asyncio.to_thread(receiver.accept)
                    data = incoming.body
                    on_amqp1.append(json.loads(data if isinstance(data, str) else bytes(data)))

            async def redis_until(body: str) -> None:
                async with asyncio.timeout(TIMEOUT):
                    while body not in on_redis:
                        item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                        if item is not None:
                            on_redis.append(json.loads(item["data"]))

            for body in everything:
                await amqp1_until(body)
                await redis_until(body)
            # A last message on both paths: an echo of the others would have come before it.
            await hub.publish(f"{prefix}.end", "end")
            await amqp1_until("end")
            await redis_until("end")
    finally:
        connection.close()


async def test_redis_and_amqp1_bridged_each_message_once_no_echo():
    prefix = f"bridge13.{uuid4().hex[:12]}"
    config = {**redis_bus(), **amqp1(), "moksha.backends": "redis, amqp1"}
    plain_redis = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    pubsub = plain_redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe(f"{prefix}.*")
    connection = await asyncio.to_thread(BlockingConnection, AMQP1, timeout=TIMEOUT)
    receiver = await asyncio.to_thread(connection.create_receiver, f"/topic/{prefix}.*")
    try:
        async with CentralMokshaHub(config, [], []) as hub:
            await plain_redis.publish(f"{prefix}.redis", json.dumps("from redis"))
            await asyncio.to_thread(proton_send, f"{prefix}.amqp1", json.dumps("from amqp1"))
            await hub.publish(f"{prefix}.last", "last")  # after the others on both paths
            on_amqp1: list[str] = []
            while "last" not in on_amqp1:
                incoming = await asyncio.to_thread(receiver.receive, TIMEOUT)
                await asyncio.to_thread(receiver.accept)
                body = incoming.body
                on_amqp1.append(json.loads(bytes(body) if not isinstance(body, str) else body))
            on_redis: list[str] = []
            async with asyncio.timeout(TIMEOUT):
                while "last" not in on_redis:
                    item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                    if item is not None:
                        on_redis.append(json.loads(item["data"]))
    finally:
        await asyncio.to_thread(connection.close)
        await pubsub.aclose()
        await plain_redis.aclose()
    assert sorted(on_amqp1) == ["end", "from amqp1", "from redis", "last"]
    assert sorted(on_redis) == ["end", "from amqp1", "from redis", "last"]
