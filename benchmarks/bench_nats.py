"""NATS JetStream end to end and drain: Moksha against plain nats-py and FastStream.

``--messages`` distinct ~200-byte JSON bodies, publisher and consumer in two
processes (harness: ``bus_bench.py``), on one JetStream stream made for the
run (interest retention; deleted afterwards).  Every side works in the same
mode:

* publisher: JetStream publishes, each awaited until the stream acked it,
  at most ``--window`` in flight (the nats-py side sends Moksha's metadata as
  headers too: id, timestamp, content type);
* consumer: a durable pull consumer (explicit acks, batches of up to 100),
  each message decoded from JSON, counted, and only then acknowledged.

Sides: *nats-py* (the baseline: ``js.publish`` and ``pull_subscribe`` /
``fetch`` / ``msg.ack()``), *Moksha* (``MokshaHub.publish``; a
``CentralMokshaHub`` running one ``async def consume`` consumer in blocking
mode), *FastStream* (``NatsBroker.publish(..., stream=...)``; a subscriber
with ``pull_sub=PullSub(100)`` and a durable name, acking after the handler).
Targets: Moksha >= 0.8x nats-py and >= 1.5x FastStream.  Run from the
repository root, on a quiet machine or under ``chrt -f 10``::

    python benchmarks/bench_nats.py [--messages N] [--repeat R] [--window W]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from typing import Any

import nats
from bus_bench import (
    Tally,
    body_size,
    compare,
    consume_with_hub,
    publish_with_hub,
    report,
    run_timeout,
    sliding,
)
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy

from moksha.config import Config, load_config

URL = "nats://127.0.0.1:4222"
RUN = os.environ.setdefault("BENCH_RUN_ID", uuid.uuid4().hex[:8])
STREAM = f"bench-nats-{RUN}"
SPACE = f"bench.nats.{RUN}"
BATCH = 100


# -- nats-py -----------------------------------------------------------------


async def consume_raw(n: int, ready: Callable[[], None]) -> Tally:
    done = asyncio.Event()
    tally = Tally(n, done.set)
    nc = await nats.connect(URL)
    try:
        js = nc.jetstream()
        config = ConsumerConfig(
            durable_name="raw",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW,
            filter_subject=f"{SPACE}.raw",
            max_ack_pending=BATCH,
        )
        await js.add_consumer(STREAM, config)
        pull = await js.pull_subscribe_bind("raw", STREAM)
        ready()
        async with asyncio.timeout(run_timeout(n)):
            while not done.is_set():
                try:
                    batch = await pull.fetch(BATCH, timeout=1.0)
                except nats.errors.TimeoutError:
                    continue
                for msg in batch:
                    tally.work(json.loads(msg.data))
                    await msg.ack()
    finally:
        await nc.close()
    return tally


async def publish_raw(bodies: Sequence[dict[str, Any]], window: int) -> tuple[float, float]:
    nc = await nats.connect(URL)
    js = nc.jetstream()
    ids = itertools.count()

    def send(body: dict[str, Any]) -> Awaitable[Any]:
        # The same metadata as Moksha's wire, made the plain way (FastStream sends its own).
        headers = {
            "moksha-id": f"{RUN}-{next(ids)}",
            "moksha-timestamp": repr(time.time()),
            "Content-Type": "application/json",
        }
        return js.publish(f"{SPACE}.raw", json.dumps(body).encode(), headers=headers)

    started = time.monotonic()
    await sliding(send, bodies, window)
    finished = time.monotonic()
    await nc.close()
    return started, finished


# -- Moksha ------------------------------------------------------------------


def moksha_config() -> Config:
    overrides = {
        "nats_url": URL,
        "nats_stream": STREAM,
        "nats_stream_subjects": f"{SPACE}.>",
        "nats_inflight": BATCH,
        "moksha.blocking_mode": True,
    }
    return load_config(overrides=overrides, environ={}, search=False)


async def consume_moksha(n: int, ready: Callable[[], None]) -> Tally:
    name = ("bench_nats", f"NATSBenchConsumer_{RUN}")
    return await consume_with_hub(moksha_config(), f"{SPACE}.moksha", name, n, ready)


async def publish_moksha(bodies: Sequence[dict[str, Any]], window: int) -> tuple[float, float]:
    return await publish_with_hub(moksha_config(), f"{SPACE}.moksha", bodies, window)


# -- FastStream --------------------------------------------------------------


async def consume_faststream(n: int, ready: Callable[[], None]) -> Tally:
    from faststream.nats import JStream, NatsBroker, PullSub

    done = asyncio.Event()
    tally = Tally(n, done.set)
    broker = NatsBroker(URL, logger=None)

    @broker.subscriber(
        f"{SPACE}.faststream",
        stream=JStream(STREAM, declare=False),
        durable="faststream",
        pull_sub=PullSub(BATCH),
        deliver_policy=DeliverPolicy.NEW,
    )
    async def handle(body: dict[str, Any]) -> None:
        tally.work(body)

    async with broker:
        await broker.start()
        ready()
        async with asyncio.timeout(run_timeout(n)):
            await done.wait()
    return tally


async def publish_faststream(bodies: Sequence[dict[str, Any]], window: int) -> tuple[float, float]:
    from faststream.nats import NatsBroker

    async with NatsBroker(URL, logger=None) as broker:
        subject = f"{SPACE}.faststream"
        started = time.monotonic()
        await sliding(lambda b: broker.publish(b, subject, stream=STREAM), bodies, window)
        return started, time.monotonic()


# -- the stream, around every run --------------------------------------------


async def fresh_stream() -> None:
    """A new, empty stream for the next run (its durable consumers go with the old one)."""
    nc = await nats.connect(URL)
    try:
        js = nc.jetstream()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(STREAM)
        await js.add_stream(
            name=STREAM, subjects=[f"{SPACE}.>"], retention=RetentionPolicy.INTEREST
        )
    finally:
        await nc.close()


async def delete_stream() -> None:
    nc = await nats.connect(URL)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(STREAM)
    finally:
        await nc.close()


SIDES = {
    "Moksha": (consume_moksha, publish_moksha),
    "nats-py": (consume_raw, publish_raw),
    "FastStream": (consume_faststream, publish_faststream),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (median)")
    parser.add_argument("--window", type=int, default=100, help="publishes awaiting their ack")
    parser.add_argument("--measures", default="e2e,drain", help="e2e, drain or both")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.repeat < 1 or args.window < 1:
        parser.error("--messages, --repeat and --window must be at least 1")
    print(
        f"python {platform.python_version()}, nats-py {metadata.version('nats-py')}, "
        f"FastStream {metadata.version('faststream')}; NATS on {URL}; {os.cpu_count()} cores; "
        f"messages: {args.messages} (body {body_size(args.messages):.0f} bytes), "
        f"window {args.window}, repeat {args.repeat} (median)"
    )
    began = time.perf_counter()
    try:
        for drain, title in (
            (False, "end to end (first publish to N-th consumed)"),
            (True, "drain (N kept in the stream, consumer start to N-th)"),
        ):
            if ("drain" if drain else "e2e") not in args.measures:
                continue
            runs = compare(
                SIDES, n=args.messages, window=args.window, repeat=args.repeat, drain=drain,
                cleanup=fresh_stream,
            )  # fmt: skip
            report(title, runs, "Moksha", {"nats-py": 0.8, "FastStream": 1.5})
    finally:
        asyncio.run(delete_stream())
    print(f"\ntotal time {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
