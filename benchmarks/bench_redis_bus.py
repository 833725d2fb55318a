"""Redis end to end: Moksha's Redis bus against plain redis-py and FastStream's Redis broker.

``--messages`` distinct ~200-byte JSON bodies go publisher -> Redis
(127.0.0.1:6379) -> consumer, publisher and consumer in two processes.  Every
side does the same work in each scenario:

* ``pubsub`` (fan-out): the publisher awaits each publish on channel
  ``bench.redis.<run>.event``; the consumer is subscribed to that channel and
  decodes each JSON body.  Moksha: ``MokshaHub.publish`` /
  ``MokshaHub.asubscribe`` (which also carries id and headers: a meta message
  sent by the same Lua script); plain: ``PUBLISH`` / ``SUBSCRIBE`` with redis-py;
  FastStream: ``broker.publish(channel=...)`` / ``@broker.subscriber(channel)``.
* ``streams`` (a consumer group, acknowledged after the work): the publisher
  awaits each append; the consumer reads with ``XREADGROUP`` and acknowledges
  each message after decoding it.  Moksha: ``MokshaHub.publish`` and a
  ``CentralMokshaHub`` consumer class (its Streams group); plain: ``XADD`` /
  ``XREADGROUP`` + ``XACK`` with redis-py; FastStream: ``stream=`` with a
  ``StreamSub`` group.

Timed from the first publish to the N-th message consumed; each side's median
over ``--repeat`` runs and Moksha's ratio to each (target: >= 0.8 of plain,
>= 1.5 of FastStream).  Keys are made under ``bench.redis.<run>`` and deleted
after.  Run from the repository root::

    chrt -f 10 python benchmarks/bench_redis_bus.py [--messages N] [--repeat R]
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

import redis.asyncio as aioredis

from moksha.hub import CentralMokshaHub, MokshaHub
from moksha.hub.api import Consumer

URL = "redis://127.0.0.1:6379/0"
RUN = os.environ.setdefault("BENCH_RUN_ID", uuid.uuid4().hex[:8])
PREFIX = f"bench.redis.{RUN}"
TOPIC = f"{PREFIX}.event"
STREAM = f"{PREFIX}:faststream"  # the plain and FastStream sides' stream
GROUP = "bench"
SIDES = ("plain", "moksha", "faststream")


def bodies(n: int) -> list[dict[str, Any]]:
    text = "lorem ipsum dolor sit amet, consectetur adipiscing elit " * 2
    return [
        {"seq": i, "user": f"user{i % 97}", "kind": "bench.sample", "ok": True,
         "value": i * 0.5, "text": text[:100]}
        for i in range(n)
    ]  # fmt: skip


class Tally:
    """Count each ``seq`` once; note the time of the N-th."""

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


def moksha_config(scenario: str) -> dict[str, Any]:
    return {
        "moksha.backends": "redis",
        "redis_bus_url": URL,
        "redis_bus_prefix": f"{PREFIX}:{scenario}:",
    }


# -- consumers (in their own process) -------------------------------------------


async def consume(side: str, scenario: str, n: int, ready: Callable[[], None]) -> float:
    done = asyncio.Event()
    tally = Tally(n, done.set)
    if side == "plain":
        client = aioredis.Redis.from_url(URL)
        if scenario == "pubsub":
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(TOPIC)
            await pubsub.get_message(timeout=1.0)  # the subscribe confirmation

            async def read() -> None:
                while not done.is_set():
                    item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if item is not None:
                        tally.work(json.loads(item["data"]))

        else:
            await client.xgroup_create(STREAM, GROUP, id="$", mkstream=True)

            async def read() -> None:
                while not done.is_set():
                    replies = await client.xreadgroup(GROUP, "c", {STREAM: ">"}, 100, 1000)
                    for _, entries in replies or []:
                        for entry_id, fields in entries:
                            tally.work(json.loads(fields[b"body"]))
                            await client.xack(STREAM, GROUP, entry_id)

        ready()
        await asyncio.wait_for(read(), 600)
        await client.aclose()
    elif side == "moksha":
        config = moksha_config(scenario)
        if scenario == "pubsub":
            async with MokshaHub(config) as hub:
                await hub.asubscribe(TOPIC, lambda m: tally.work(m.body))
                ready()
                await asyncio.wait_for(done.wait(), 600)
        else:

            class Counter(Consumer):
                topic = TOPIC

                async def consume(self, message: Any) -> None:
                    tally.work(message.body)

            async with CentralMokshaHub(config, [Counter], []):
                ready()
                await asyncio.wait_for(done.wait(), 600)
    else:
        from faststream.redis import RedisBroker, StreamSub

        broker = RedisBroker(URL, logger=None)
        if scenario == "pubsub":
            broker.subscriber(TOPIC)(lambda body: tally.work(body))
        else:
            sub = StreamSub(STREAM, group=GROUP, consumer="c")
            broker.subscriber(stream=sub)(lambda body: tally.work(body))
        await broker.start()
        ready()
        await asyncio.wait_for(done.wait(), 600)
        await broker.stop()
    return tally.finished


def consumer_process(side: str, scenario: str, n: int, pipe: Connection) -> None:
    finished = asyncio.run(consume(side, scenario, n, lambda: pipe.send("ready")))
    pipe.send(finished)


# -- publishers (in this process) -------------------------------------------------


async def publish(side: str, scenario: str, batch: list[dict[str, Any]]) -> float:
    if side == "plain":
        client = aioredis.Redis.from_url(URL)
        await client.ping()
        start = time.monotonic()
        for body in batch:
            if scenario == "pubsub":
                await client.publish(TOPIC, json.dumps(body))
            else:
                await client.xadd(STREAM, {"topic": TOPIC, "body": json.dumps(body)})
        await client.aclose()
        return start
    if side == "moksha":
        async with MokshaHub(moksha_config(scenario)) as hub:
            start = time.monotonic()
            for body in batch:
                await hub.publish(TOPIC, body)
        return start
    from faststream.redis import RedisBroker

    broker = RedisBroker(URL, logger=None)
    await broker.connect()
    start = time.monotonic()
    for body in batch:
        if scenario == "pubsub":
            await broker.publish(body, channel=TOPIC)
        else:
            await broker.publish(body, stream=STREAM)
    await broker.stop()
    return start


async def clean() -> None:
    client = aioredis.Redis.from_url(URL)
    keys = [key async for key in client.scan_iter(match=f"{PREFIX}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def one_run(side: str, scenario: str, n: int) -> float:
    asyncio.run(clean())
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=consumer_process, args=(side, scenario, n, theirs)
    )
    process.start()
    if not ours.poll(60) or ours.recv() != "ready":
        raise RuntimeError(f"{side} consumer did not start")
    start = asyncio.run(publish(side, scenario, bodies(n)))
    if not ours.poll(600):
        raise RuntimeError(f"{side} consumer did not finish")
    finished = ours.recv()
    process.join(30)
    asyncio.run(clean())
    return finished - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scenarios", default="pubsub,streams")
    args = parser.parse_args()
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("redis", "faststream"))
    print(f"{args.messages} messages, median of {args.repeat}; {versions}")
    for scenario in args.scenarios.split(","):
        times: dict[str, list[float]] = {side: [] for side in SIDES}
        for _ in range(args.repeat):
            for side in SIDES:  # the sides take turns, so drift in load hits each alike
                times[side].append(one_run(side, scenario, args.messages))
        median = {side: statistics.median(values) for side, values in times.items()}
        print(f"\n{scenario}:")
        print("| side | median s | msgs/s | Moksha / side |")
        print("|---|---:|---:|---:|")
        for side in SIDES:
            rate = args.messages / median[side]
            ratio = median[side] / median["moksha"]
            print(f"| {side} | {median[side]:.3f} | {rate:,.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
