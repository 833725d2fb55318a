"""End to end through a hub: a consumer on RabbitMQ loses nothing while connections die."""

from __future__ import annotations

import asyncio
import threading
from uuid import uuid4

import aio_pika

from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer
from moksha.hub.hub import group_name
from support import TIMEOUT, require_service
from tcp_proxy import TcpProxy


async def test_every_published_message_is_consumed_despite_cut_connections():
    """300 numbered messages, connections cut three times: each consumed at least once.

    Blocking mode acknowledges a message only once ``consume`` returned, and
    the consumer's queue is durable, so a cut costs at most redeliveries: the
    duplicates are bounded by the unacknowledged deliveries at each cut
    (``amqp_prefetch``) plus the publishes awaiting a confirm.
    """
    require_service("RabbitMQ", 5672)
    prefix = f"alo.{uuid4().hex[:10]}"
    consumed: list[int] = []
    lock = threading.Lock()

    class Numbers(Consumer):
        topic = f"{prefix}.n"

        def consume(self, message):
            with lock:
                consumed.append(message.body)

    total, prefetch = 300, 20
    async with TcpProxy(5672) as proxy:
        config = {
            "amqp_broker": f"amqp://guest:guest@127.0.0.1:{proxy.port}/",
            "amqp_prefetch": prefetch,
            "moksha.blocking_mode": True,
            "moksha.reconnect_delay": 0.1,
        }
        async with CentralMokshaHub(config, [Numbers], []) as hub:
            for n in range(total):
                if n in (75, 150, 225):
                    await proxy.cut()
                await hub.publish(f"{prefix}.n", n)
            async with asyncio.timeout(4 * TIMEOUT):
                while set(consumed) != set(range(total)):
                    await asyncio.sleep(0.05)
        connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(f"moksha.{group_name(Numbers)}")
    assert sorted(set(consumed)) == list(range(total))
    assert len(consumed) - total <= 3 * (prefetch + 1)
    assert proxy.connections_made >= 4
