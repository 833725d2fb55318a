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

Timed from the first publish to the N-th message consumed (end to end) and,
for ``streams``, also as a drain: the group is made and left, the N messages
are appended while nobody reads, then a consumer starts (its start to the N-th
consumed).  Each side's median over ``--repeat`` runs and Moksha's ratio to
each (target: >= 0.8 of plain, >= 1.5 of FastStream).  Keys are made under
``bench.redis.<run>`` and deleted after.  Run from the repository root::

    chrt -f 10 python benchmarks/bench_redis_bus.py [--messages N] [--repeat R]

The two processes and the timing are ``bus_bench``'s, as for MQTT and NATS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import time
import uuid
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import redis.asyncio as aioredis
from bus_bench import (
    Tally,
    compare,
    consume_with_hub,
    publish_with_hub,
    report,
    run_timeout,
    sliding,
)
from redis.exceptions import ResponseError

from moksha.config import Config, load_config
from moksha.hub import MokshaHub

URL = "redis://127.0.0.1:6379/0"
RUN = os.environ.setdefault("BENCH_RUN_ID", uuid.uuid4().hex[:8])
PREFIX = f"bench.redis.{RUN}"
TOPIC = f"{PREFIX}.event"
STREAM = f"{PREFIX}:faststream"  # the plain and FastStream sides' stream
GROUP = "bench"


# -- plain redis-py -----------------------------------------------------------------


async def consume_plain(scenario: str, n: int, ready: Callable[[], None]) -> Tally:
    done = asyncio.Event()
    tally = Tally(n, done.set)
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
        with contextlib.suppress(ResponseError):  # BUSYGROUP: a drain's group, left for us
            await client.xgroup_create(STREAM, GROUP, id="$", mkstream=True)

        async def read() -> None:
            while not done.is_set():
                replies = await client.xreadgroup(GROUP, "c", {STREAM: ">"}, 100, 1000)
                for _, entries in replies or []:
                    for entry_id, fields in entries:
                        tally.work(json.loads(fields[b"body"]))
                        await client.xack(STREAM, GROUP, entry_id)

    try:  # closed even when a drain's first phase leaves at ready()
        ready()
        await asyncio.wait_for(read(), run_timeout(n))
    finally:
        await client.aclose()
    return tally


async def publish_plain(
    scenario: str, bodies: Sequence[dict[str, Any]], window: int
) -> tuple[float, float]:
    client = aioredis.Redis.from_url(URL)
    await client.ping()

    def send(body: dict[str, Any]) -> Any:
        if scenario == "pubsub":
            return client.publish(TOPIC, json.dumps(body))
        return client.xadd(STREAM, {"topic": TOPIC, "body": json.dumps(body)})

    started = time.monotonic()
    await sliding(send, bodies, window)
    finished = time.monotonic()
    await client.aclose()
    return started, finished


# -- Moksha ---------------------------------------------------------------------------


def moksha_config(scenario: str) -> Config:
    overrides = {
        "moksha.backends": "redis",
        "redis_bus_url": URL,
        "redis_bus_prefix": f"{PREFIX}:{scenario}:",
    }
    return load_config(overrides=overrides, environ={}, search=False)


async def consume_moksha(scenario: str, n: int, ready: Callable[[], None]) -> Tally:
    if scenario == "streams":  # a consumer class: its Streams group, acked after consume
        name = ("bench_redis_bus", f"RedisBenchConsumer_{RUN}")
        return await consume_with_hub(moksha_config(scenario), TOPIC, name, n, ready)
    done = asyncio.Event()
    tally = Tally(n, done.set)
    async with MokshaHub(moksha_config(scenario)) as hub:
        await hub.asubscribe(TOPIC, lambda message: tally.work(message.body))
        ready()
        await asyncio.wait_for(done.wait(), run_timeout(n))
    return tally


async def publish_moksha(
    scenario: str, bodies: Sequence[dict[str, Any]], window: int
) -> tuple[float, float]:
    return await publish_with_hub(moksha_config(scenario), TOPIC, bodies, window)


# -- FastStream -------------------------------------------------------------------------


async def consume_faststream(scenario: str, n: int, ready: Callable[[], None]) -> Tally:
    from faststream.redis import RedisBroker, StreamSub

    done = asyncio.Event()
    tally = Tally(n, done.set)
    broker = RedisBroker(URL, logger=None)
    if scenario == "pubsub":
        broker.subscriber(TOPIC)(lambda body: tally.work(body))
    else:
        sub = StreamSub(STREAM, group=GROUP, consumer="c")
        broker.subscriber(stream=sub)(lambda body: tally.work(body))
    await broker.start()
    try:  # stopped even when a drain's first phase leaves at ready()
        ready()
        await asyncio.wait_for(done.wait(), run_timeout(n))
    finally:
        await broker.stop()
    return tally


async def publish_faststream(
    scenario: str, bodies: Sequence[dict[str, Any]], window: int
) -> tuple[float, float]:
    from faststream.redis import RedisBroker

    broker = RedisBroker(URL, logger=None)
    await broker.connect()

    def send(body: dict[str, Any]) -> Any:
        if scenario == "pubsub":
            return broker.publish(body, channel=TOPIC)
        return broker.publish(body, stream=STREAM)

    started = time.monotonic()
    await sliding(send, bodies, window)
    finished = time.monotonic()
    await broker.stop()
    return started, finished


async def clean() -> None:
    client = aioredis.Redis.from_url(URL)
    keys = [key async for key in client.scan_iter(match=f"{PREFIX}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def sides(scenario: str) -> dict[str, Any]:
    return {
        name: (functools.partial(consume, scenario), functools.partial(publish, scenario))
        for name, consume, publish in (
            ("Moksha", consume_moksha, publish_moksha),
            ("redis-py", consume_plain, publish_plain),
            ("FastStream", consume_faststream, publish_faststream),
        )
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--window", type=int, default=1, help="publishes awaited at once")
    parser.add_argument("--scenarios", default="pubsub,streams")
    args = parser.parse_args()
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("redis", "faststream"))
    print(
        f"python {platform.python_version()}, {versions}; {args.messages} messages, "
        f"window {args.window}, median of {args.repeat}"
    )
    for scenario in args.scenarios.split(","):
        # Pub/sub keeps nothing while nobody listens: only a group can be drained.
        for drain in (False, True) if scenario == "streams" else (False,):
            runs = compare(
                sides(scenario),
                n=args.messages,
                window=args.window,
                repeat=args.repeat,
                drain=drain,
                cleanup=clean,
            )
            title = f"{scenario}, drain (group start to N-th)" if drain else scenario
            report(title, runs, "Moksha", {"redis-py": 0.8, "FastStream": 1.5})


if __name__ == "__main__":
    main()
