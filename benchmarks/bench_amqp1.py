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
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import time
import uuid
from collections.abc import Callable
from importlib import metadata
from multiprocessing.connection import Connection
from typing import Any

import aio_pika
from proton import Message as AMQPMessage
from proton.handlers import MessagingHandler
from proton.reactor import Container

from moksha.hub import MokshaHub

URL = "amqp://guest:guest@127.0.0.1:5672"
RUN = os.environ.setdefault("BENCH_RUN_ID", uuid.uuid4().hex[:8])
TOPIC = f"bench.amqp1.{RUN}.event"
SIDES = ("proton", "moksha")
RAW_QUEUE = f"bench.amqp1.{RUN}.proton"
CONFIG = {"moksha.backends": "amqp1", "amqp1_url": URL, "amqp1_prefetch": 500}


def bodies(n: int) -> list[dict[str, Any]]:
    text = "lorem ipsum dolor sit amet, consectetur adipiscing elit " * 2
    return [
        {"seq": i, "user": f"user{i % 97}", "kind": "bench.sample", "ok": True,
         "value": i * 0.5, "text": text[:100]}
        for i in range(n)
    ]  # fmt: skip


class Tally:
    def __init__(self, n: int, done: Callable[[], None]) -> None:
        self.n, self.seen, self.distinct, self.finished = n, bytearray(n), 0, 0.0
        self._done = done

    def work(self, body: dict[str, Any]) -> None:
        if not self.seen[body["seq"]]:
            self.seen[body["seq"]] = 1
            self.distinct += 1
            if self.distinct == self.n:
                self.finished = time.monotonic()  # CLOCK_MONOTONIC: same in both processes
                self._done()


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
    def __init__(self, batch: list[dict[str, Any]], window: int) -> None:
        super().__init__()
        self.batch, self.sent, self.accepted, self.start = batch, 0, 0, 0.0
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
        if self.sent < len(self.batch):
            self._send_window()
        else:
            self.connection.close()

    def _send_window(self) -> None:
        for _ in range(min(self.window, len(self.batch) - self.sent)):
            self._send()

    def _send(self) -> None:
        message = AMQPMessage(
            body=json.dumps(self.batch[self.sent]).encode(),
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


def consumer_process(side: str, n: int, pipe: Connection) -> None:
    ready = lambda: pipe.send("ready")  # noqa: E731
    if side == "proton":
        asyncio.run(raw_queue(declare=True))
        handler = ProtonReceiver(n, ready)
        Container(handler).run()
        asyncio.run(raw_queue(declare=False))
        pipe.send(handler.tally.finished)
        return

    async def consume() -> float:
        done = asyncio.Event()
        tally = Tally(n, done.set)
        async with MokshaHub(CONFIG) as hub:
            await hub.asubscribe(TOPIC, lambda m: tally.work(m.body))
            ready()
            await asyncio.wait_for(done.wait(), 600)
        return tally.finished

    pipe.send(asyncio.run(consume()))


def publish(side: str, batch: list[dict[str, Any]], window: int) -> float:
    if side == "proton":
        handler = ProtonSender(batch, window)
        Container(handler).run()
        return handler.start

    async def send() -> float:
        async with MokshaHub(CONFIG) as hub:
            start = time.monotonic()
            for first in range(0, len(batch), window):
                await asyncio.gather(
                    *(hub.publish(TOPIC, body) for body in batch[first : first + window])
                )
        return start

    return asyncio.run(send())


def one_run(side: str, n: int, window: int) -> float:
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=consumer_process, args=(side, n, theirs)
    )
    process.start()
    if not ours.poll(60) or ours.recv() != "ready":
        raise RuntimeError(f"{side} consumer did not start")
    start = publish(side, bodies(n), window)
    if not ours.poll(600):
        raise RuntimeError(f"{side} consumer did not finish")
    finished = ours.recv()
    process.join(30)
    return finished - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--window", type=int, default=100)
    args = parser.parse_args()
    print(f"{args.messages} messages, median of {args.repeat}; "
          f"python-qpid-proton {metadata.version('python-qpid-proton')}")  # fmt: skip
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    for _ in range(args.repeat):
        for side in SIDES:
            times[side].append(one_run(side, args.messages, args.window))
    median = {side: statistics.median(values) for side, values in times.items()}
    print("| side | median s | msgs/s | Moksha / side |")
    print("|---|---:|---:|---:|")
    for side in SIDES:
        rate, ratio = args.messages / median[side], median[side] / median["moksha"]
        print(f"| {side} | {median[side]:.3f} | {rate:,.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
