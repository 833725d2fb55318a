"""What making a durable queue's bindings follow the code adds to starting a consumer.

Two sides, each run ``--repeat`` times on RabbitMQ at 127.0.0.1:5672 (guest/guest):

* the *baseline*, what a subscription did before the queue registry: on an
  open connection, a channel declaring the durable queue and binding it to
  ``amq.topic`` with each pattern (``--patterns``, 3);
* *Moksha*: :func:`moksha.hub.backends.amqp_bindings.follow_code` for the same
  queue and patterns: its own connection, the registry's lock, reading the
  records, checking the liveness marker of each other live release
  (``--releases``, 1: none but this one), binding, writing the record.

Prints the median and the slowest of each side, in milliseconds, and their
ratio.  Every queue it makes is deleted at the end.  Run from the repository
root::

    python benchmarks/bench_queue_registry.py [--repeat R] [--patterns P] [--releases N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence

import aio_pika

from moksha.hub.backends.amqp_bindings import follow_code
from moksha.hub.backends.amqp_registry import Registry, live_marker, registry_queue

BROKER = "amqp://guest:guest@127.0.0.1:5672/"


async def measure(repeat: int, patterns: int, releases: int) -> tuple[list[float], list[float]]:
    prefix = f"bench.registry.{uuid.uuid4().hex[:8]}"
    keys = [f"{prefix}.topic{n}" for n in range(patterns)]
    baseline: list[float] = []
    moksha: list[float] = []
    async with await aio_pika.connect(BROKER) as connection:
        holder = await connection.channel()
        others = [live_marker(prefix) for _ in range(releases - 1)]
        for marker in others:  # other live releases, whose markers each start checks
            await holder.declare_queue(marker, exclusive=True)
        try:
            for n in range(repeat):
                started = time.perf_counter()
                channel = await connection.channel()
                queue = await channel.declare_queue(f"{prefix}.plain{n}", durable=True)
                for key in keys:
                    await queue.bind("amq.topic", routing_key=key)
                await channel.close()
                baseline.append(time.perf_counter() - started)

                marker = live_marker(prefix)
                await holder.declare_queue(marker, exclusive=True)
                started = time.perf_counter()
                await follow_code(
                    BROKER,
                    prefix,
                    exchange="amq.topic",
                    queue=f"{prefix}.followed{n}",
                    group=f"followed{n}",
                    patterns=keys,
                    marker=marker,
                )
                moksha.append(time.perf_counter() - started)
        finally:
            for n in range(repeat):
                await holder.queue_delete(f"{prefix}.plain{n}")
            async with Registry.open(BROKER, prefix) as registry:
                for name in list(registry.records):
                    await registry.delete(name)
            await holder.queue_delete(registry_queue(prefix))
    return baseline, moksha


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="starts per side")
    parser.add_argument("--patterns", type=int, default=3, help="patterns per consumer")
    parser.add_argument("--releases", type=int, default=1, help="live releases of it")
    args = parser.parse_args(argv)
    if min(args.repeat, args.patterns, args.releases) < 1:
        parser.error("--repeat, --patterns and --releases must be at least 1")
    baseline, moksha = asyncio.run(measure(args.repeat, args.patterns, args.releases))
    print(f"{args.repeat} starts, {args.patterns} patterns, {args.releases} live release(s)")
    for name, times in (("declare + bind (baseline)", baseline), ("follow_code", moksha)):
        print(
            f"  {name:<26} median {statistics.median(times) * 1000:7.1f} ms   "
            f"slowest {max(times) * 1000:7.1f} ms"
        )
    ratio = statistics.median(moksha) / statistics.median(baseline)
    print(f"ratio follow_code / baseline: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
