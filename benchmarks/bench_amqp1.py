"""AMQP 1.0 end to end on RabbitMQ's plugin: Moksha's amqp1 backend against plain proton.

``--messages`` distinct ~200-byte JSON bodies go publisher -> RabbitMQ
(127.0.0.1:5672, ``rabbitmq_amqp1_0``) -> consumer, in two processes; both
sides do the same work:

* the publisher sends the messages to ``/exchange/amq.topic`` with the topic as
  ``subject`` in windows of ``--window`` (100), each window accepted by the broker
  before the next one starts (Moksha: ``await MokshaHub.publish`` gathered per
  window; proton: a ``MessagingHandler`` sending the next window once
  ``on_accepted`` counted the last one);
* the consumer reads a queue bound to ``amq.topic`` with the topic
  ``bench.amqp1.<run>.event`` from ``/amq/queue/<name>`` with 500 credit,
  accepting on arrival, and decodes each JSON body (Moksha:
  ``MokshaHub.asubscribe``, which declares its queue so; proton: ``on_message``
  on a queue this script declares the same way, over AMQP 0-9-1).  Not the
  plugin's ``/topic/`` source: RabbitMQ 3.10 never deletes its queue
  (rabbitmq-server #2588), and this broker is shared.

Timed from the first publish to the N-th message consumed; each side's median
over ``--repeat`` runs and Moksha's ratio to proton (target >= 0.8).  Run from
the repository root::

    chrt -f 10 python benchmarks/bench_amqp1.py [--messages N] [--repeat R]

The two processes and the timing are ``bus_bench``'s, as for the other buses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
import uuid
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import aio_pika
from bus_bench import Tally, body_size, compare, report, run_timeout
from proton import Message as AMQPMessage
from proton.handlers import MessagingHandler
from proton.reactor import Container

from moksha.hub import MokshaHub

URL = "amqp://guest:guest@127.0.0.1:5672"
RUN = os.environ.setdefault("BENCH_RUN_ID", uuid.uuid4().hex[:8])
TOPIC = f"bench.amqp1.{RUN}.event"
RAW_QUEUE = f"bench.amqp1.{RUN}.proton"
CONFIG = {"moksha.backends": "amqp1", "amqp1_url": URL, "amqp1_prefetch": 500}


# -- plain proton ---------------------------------------------------------------------


class ProtonReceiver(MessagingHandler):
    def __init__(self, n: int, ready: Callable[[], None]) -> None:
        super().__init__(prefetch=500)
        self.tally = Tally(n, self._close)
        self._ready = ready

    def on_start(self, event: Any) -> None:
        self.connection = event.container.connect(URL)
        event.container.create_receiver(self.connection, f"/amq/queue/{RAW_QUEUE}")

    def on_link_opened(self, event: Any) -> None:
        if event.receiver:
            self._ready()

    def on_message(self, event: Any) -> None:
        self.tally.work(json.loads(bytes(event.message.body)))

    def _close(self) -> None:
        self.connection.close()


class ProtonSender(MessagingHandler):
    def __init__(self, bodies: Sequence[dict[str, Any]], window: int) -> None:
        super().__init__()
        self.bodies, self.sent, self.accepted, self.start = bodies, 0, 0, 0.0
        self.window = window

    def on_start(self, event: Any) -> None:
        self.connection = event.container.connect(URL)
        self.sender = event.container.create_sender(self.connection, "/exchange/amq.topic")

    def on_sendable(self, event: Any) -> None:
        if self.sent == 0 and not self.start:
            self.start = time.monotonic()
            self._send_window()

    def on_accepted(self, event: Any) -> None:
        self.accepted += 1
        if self.accepted < self.sent:
            return
        if self.sent < len(self.bodies):
            self._send_window()
        else:
            self.connection.close()

    def _send_window(self) -> None:
        for _ in range(min(self.window, len(self.bodies) - self.sent)):
            self._send()

    def _send(self) -> None:
        message = AMQPMessage(
            body=json.dumps(self.bodies[self.sent]).encode(),
            subject=TOPIC,
            content_type="application/json",
        )
        message.inferred = True
        self.sender.send(message)
        self.sent += 1


async def raw_queue(declare: bool) -> None:
    """Declare (or delete) the plain side's queue, bound to the topic, over AMQP 0-9-1."""
    async with await aio_pika.connect(URL + "/") as connection:
        channel = await connection.channel()
        if declare:
            queue = await channel.declare_queue(RAW_QUEUE, arguments={"x-expires": 60_000})
            await queue.bind("amq.topic", TOPIC)
        else:
            await channel.queue_delete(RAW_QUEUE)


def consume_proton(n: int, ready: Callable[[], None]) -> Tally:
    asyncio.run(raw_queue(declare=True))
    handler = ProtonReceiver(n, ready)
    Container(handler).run()
    asyncio.run(raw_queue(declare=False))
    return handler.tally


def publish_proton(bodies: Sequence[dict[str, Any]], window: int) -> tuple[float, float]:
    handler = ProtonSender(bodies, window)
    Container(handler).run()
    return handler.start, time.monotonic()


# -- Moksha ---------------------------------------------------------------------------


async def consume_moksha(n: int, ready: Callable[[], None]) -> Tally:
    done = asyncio.Event()
    tally = Tally(n, done.set)
    async with MokshaHub(CONFIG) as hub:
        await hub.asubscribe(TOPIC, lambda message: tally.work(message.body))
        ready()
        await asyncio.wait_for(done.wait(), run_timeout(n))
    return tally


async def publish_moksha(bodies: Sequence[dict[str, Any]], window: int) -> tuple[float, float]:
    """Windows as proton's side sends them: the next once the broker accepted the last."""
    async with MokshaHub(CONFIG) as hub:
        started = time.monotonic()
        for first in range(0, len(bodies), window):
            await asyncio.gather(
                *(hub.publish(TOPIC, body) for body in bodies[first : first + window])
            )
        return started, time.monotonic()


SIDES = {"Moksha": (consume_moksha, publish_moksha), "proton": (consume_proton, publish_proton)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--window", type=int, default=100)
    args = parser.parse_args()
    print(
        f"python {platform.python_version()}, python-qpid-proton "
        f"{metadata.version('python-qpid-proton')}; RabbitMQ on {URL.rpartition('@')[2]}; "
        f"{args.messages} messages (body {body_size(args.messages):.0f} bytes), "
        f"window {args.window}, median of {args.repeat}"
    )
    runs = compare(SIDES, n=args.messages, window=args.window, repeat=args.repeat, drain=False)
    report("end to end (first publish to N-th consumed)", runs, "Moksha", {"proton": 0.8})


if __name__ == "__main__":
    main()
