"""End to end through a hub: a consumer on RabbitMQ loses nothing while connections die.

Connections are cut by a proxy between the hub and the broker, and the broker
itself is restarted (``rabbitmqctl stop_app`` / ``start_app``) while messages
wait in the consumer's durable queue, on AMQP and on STOMP.  The restart is
felt by every client of the local RabbitMQ, so this test runs one restart per
backend and always leaves the broker running (see ``broker_restart``).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from uuid import uuid4

import aio_pika
import pytest

from broker_restart import restart_rabbitmq
from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer
from moksha.hub.backends.stomp_subscription import GROUP_QUEUE_PREFIX
from moksha.hub.hub import group_name
from support import TIMEOUT, require_service
from tcp_proxy import TcpProxy

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def backend_config(backend: str, port: int, prefetch: int) -> dict[str, Any]:
    """Settings for ``backend`` through a proxy on ``port``, acknowledging each message."""
    if backend == "amqp":
        return {
            "moksha.backends": "amqp",
            "amqp_broker": f"amqp://guest:guest@127.0.0.1:{port}/",
            "amqp_prefetch": prefetch,
        }
    return {
        "moksha.backends": "stomp",
        "stomp_uri": f"127.0.0.1:{port}",
        "stomp_user": "guest",
        "stomp_pass": "guest",
        "stomp_ack_mode": "client-individual",
        "stomp_prefetch": prefetch,
    }


def queue_of(backend: str, consumer: type[Consumer]) -> str:
    prefix = "moksha." if backend == "amqp" else GROUP_QUEUE_PREFIX
    return prefix + group_name(consumer)


@pytest.mark.parametrize(("backend", "broker_port"), [("amqp", 5672), ("stomp", 61613)])
async def test_nothing_is_lost_despite_cut_connections_and_a_broker_restart(backend, broker_port):
    """240 numbered messages, connections cut twice, the broker restarted: each consumed.

    Blocking mode acknowledges a message only once ``consume`` returned, and
    the consumer's queue is durable, so a cut costs at most redeliveries: the
    duplicates are bounded by the unacknowledged deliveries at each cut
    (the prefetch) plus the publishes awaiting a confirm.  For the restart,
    the consumer is held back while the last 80 messages are published, so
    they wait in the broker's queue when it stops: only persistent messages
    (AMQP delivery mode 2, STOMP ``persistent:true``) are still there after.
    """
    require_service("RabbitMQ", 5672)
    require_service("RabbitMQ STOMP", 61613)
    prefix = f"alo.{uuid4().hex[:10]}"
    consumed: list[int] = []
    lock = threading.Lock()
    gate = threading.Event()
    gate.set()

    class Numbers(Consumer):
        topic = f"{prefix}.n"

        def consume(self, message):
            gate.wait(4 * TIMEOUT)  # bounded: a test that went wrong still ends
            with lock:
                consumed.append(message.body)

    total, prefetch, held_from = 240, 20, 160
    async with TcpProxy(broker_port) as proxy:
        config = {
            **backend_config(backend, proxy.port, prefetch),
            "moksha.blocking_mode": True,
            "moksha.reconnect_delay": 0.1,
            "moksha.reconnect_max_delay": 1.0,
            "moksha.publish_timeout": 60.0,
        }
        try:
            async with CentralMokshaHub(config, [Numbers], []) as hub:
                for n in range(total):
                    if n in (60, 120):
                        await proxy.cut()
                    if n == held_from:
                        gate.clear()
                    await hub.publish(f"{prefix}.n", n)  # returns once the broker has it
                with lock:
                    waiting = total - len(set(consumed))
                assert waiting >= total - held_from - prefetch - 1  # still in the broker's queue
                await restart_rabbitmq()
                gate.set()
                async with asyncio.timeout(6 * TIMEOUT):
                    while set(consumed) != set(range(total)):
                        await asyncio.sleep(0.05)
        finally:
            gate.set()
            async with await aio_pika.connect(AMQP) as connection:
                channel = await connection.channel()
                await channel.queue_delete(queue_of(backend, Numbers))
    assert sorted(set(consumed)) == list(range(total))
    assert len(consumed) - total <= 3 * (prefetch + 1)
    assert proxy.connections_made >= 4
