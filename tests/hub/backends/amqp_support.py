"""Helpers of the AMQP tests: a backend for a broker URL, raw aio-pika access, queue state."""

from __future__ import annotations

from typing import Any

import aio_pika

from moksha.config import load_config
from moksha.hub.backends.amqp import AMQPBackend
from moksha.hub.backends.amqp_options import to_amqp
from moksha.message import Message

BROKER = "amqp://guest:guest@127.0.0.1:5672/"


def backend_for(broker: str = BROKER, **settings: Any) -> AMQPBackend:
    config = load_config(overrides={"amqp_broker": broker, **settings}, environ={}, search=False)
    return AMQPBackend(config)


async def fill_group_queue(
    raw: aio_pika.abc.AbstractChannel, group: str, topic: str, count: int
) -> str:
    """Declare ``group``'s queue as the backend does, bound to ``topic``; put 0..count-1 in it."""
    name = f"moksha.{group}"
    queue = await raw.declare_queue(name, durable=True)
    await queue.bind("amq.topic", routing_key=topic)
    exchange = await raw.get_exchange("amq.topic")
    for n in range(count):  # one at a time, confirmed: they queue in this order
        await exchange.publish(to_amqp(Message(topic, n)), routing_key=topic)
    return name


async def ready_count(raw: aio_pika.abc.AbstractChannel, name: str) -> int:
    """Messages in queue ``name`` waiting to be delivered (not those delivered, unacked)."""
    queue = await raw.declare_queue(name, passive=True)
    return queue.declaration_result.message_count or 0


# The broker address (no broker needed).
