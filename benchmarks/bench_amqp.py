"""AMQP end-to-end throughput on RabbitMQ: Moksha's hubs against raw aio-pika.

``--messages`` distinct ~200-byte JSON bodies go publisher -> RabbitMQ
(``amq.topic``, routing key = topic) -> consumer, with the publisher and the
consumer in two separate processes.  Two sides, each timed from the
publisher's first publish to the consumer's N-th message:

* the *baseline*, raw aio-pika: a channel with publisher confirms, publishes
  with ``mandatory=False``, each window of ``--window`` (100) concurrent
  publishes awaited together (FIELD-NOTES: ~2.8k msgs/s); a consumer with
  manual acks and prefetch 100 on a durable queue bound to ``amq.topic``;
* *Moksha*: a ``MokshaHub`` (amqp backend) doing ``await hub.publish(...)``,
  also in windows of ``--window`` concurrent publishes (``asyncio.gather``),
  so both publishers keep the same number of confirms in flight; a
  ``CentralMokshaHub`` running one consumer with ``async def consume``
  (blocking mode, its durable queue, the default ``amqp_prefetch`` of 100).

Both sides send persistent messages to a durable queue, as Moksha does, and
both consumers decode each JSON body and count it: the run checks that every
message arrived, and arrived once.  Prints the median rate of each side over
``--repeat`` runs and their ratio (Moksha / aio-pika).  Queues are deleted
before and after each run.  Run from the repository root with RabbitMQ on
127.0.0.1:5672 (guest/guest)::

    python benchmarks/bench_amqp.py [--messages N] [--repeat R] [--window W] [--plain-only]

A third case, *publishing from plain Python* (issue 10): ``hub.send_message``
in a loop from a thread with no event loop (a script, a WSGI app), then
``hub.flush()`` until every message is confirmed, against the raw aio-pika
publisher above (confirms in windows of ``--window``), in one process, one
after the other, to the same bound durable queue.  Target: ratio >= 0.80.
``--plain-only`` runs just this case.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from multiprocessing.connection import Connection
from typing import Any

import aio_pika
import aiormq

from moksha.config import Config, load_config
from moksha.hub import CentralMokshaHub, MokshaHub
from moksha.hub.api import Consumer
from moksha.hub.central import group_name
from moksha.message import Message

BROKER = "amqp://guest:guest@127.0.0.1:5672/"
EXCHANGE = "amq.topic"
TOPIC = "bench.amqp.event"
WARMUP_TOPIC = "bench.amqp.warmup"  # bound to no queue: the broker drops these
WARMUP = 300  # publishes before the clock starts: connection set up, first-call costs paid
BASELINE_QUEUE = "bench.amqp.baseline"
PREFETCH = 100  # Moksha's default amqp_prefetch; the baseline consumer uses the same
SETUP_TIMEOUT = 30.0  # a process starting, connecting and declaring its queue
# The context every FIELD-NOTES figure comes with: other clients on the same broker.
PEERS = (
    ("aio-pika, confirms in windows of 100", 2_800),
    ("FastStream", 3_900),
    ("fedora-messaging", 500),
)
SIDES = ("aio-pika", "moksha")


def make_bodies(n: int) -> list[dict[str, Any]]:
    """``n`` distinct dict bodies of about 200 bytes of JSON each."""
    text = "lorem ipsum dolor sit amet, consectetur adipiscing elit " * 2
    return [
        {"seq": i, "user": f"user{i % 97}", "kind": "bench.sample", "ok": True,
         "value": i * 0.5, "text": text[:100]}
        for i in range(n)
    ]  # fmt: skip


def run_timeout(n: int) -> float:
    # Generous: even 500 msgs/s (fedora-messaging's pace) finishes inside it.
    return 30.0 + n / 500


def moksha_config(broker: str) -> Config:
    """The hubs' configuration: only the amqp backend, nothing from files or the environment."""
    overrides = {"amqp_broker": broker, "moksha.backends": "amqp", "moksha.blocking_mode": True}
    return load_config(overrides=overrides, environ={}, search=False)


# -- the consumer process ----------------------------------------------------


class Tally:
    """The consumer's work on both sides: decode nothing more, count each ``seq`` once.

    ``done`` is set when all ``n`` distinct messages have arrived.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = bytearray(n)
        self.distinct = 0
        self.duplicates = 0
        self.total = 0
        self.first_at = self.finished_at = 0.0
        self.done = asyncio.Event()

    def work(self, body: dict[str, Any]) -> None:
        seq = body["seq"]
        if self.seen[seq]:
            self.duplicates += 1
            return
        self.seen[seq] = 1
        self.total += seq
        self.distinct += 1
        # time.monotonic() is CLOCK_MONOTONIC: comparable across processes.
        if self.distinct == 1:
            self.first_at = time.monotonic()
        if self.distinct == self.n:
            self.finished_at = time.monotonic()
            self.done.set()

    def report(self) -> tuple[float, float, int, int, int]:
        return self.first_at, self.finished_at, self.distinct, self.duplicates, self.total


def moksha_consumer_class(tally: Tally) -> type[Consumer]:
    """A consumer with ``async def consume`` that hands each body to ``tally``."""

    class AMQPBenchConsumer(Consumer):
        # A fixed module and name give its durable queue a stable name, which the
        # parent process deletes before and after each run.
        __module__ = "bench_amqp"
        __qualname__ = "AMQPBenchConsumer"
        topic = TOPIC

        async def consume(self, message: Message) -> None:
            tally.work(message.body)

    return AMQPBenchConsumer


def moksha_queue_name() -> str:
    """The durable queue the Moksha consumer gets (``amqp_queue_prefix.group``)."""
    cls = moksha_consumer_class(Tally(1))
    return f"{moksha_config(BROKER).amqp_queue_prefix}.{group_name(cls)}"


async def consume_baseline(n: int, broker: str, ready: Callable[[], None]) -> Tally:
    """Raw aio-pika: manual acks, prefetch 100, a durable queue bound to ``amq.topic``."""
    tally = Tally(n)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        tally.work(json.loads(message.body))
        await message.ack()

    connection = await aio_pika.connect(broker, timeout=SETUP_TIMEOUT)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        exchange = await channel.get_exchange(EXCHANGE)
        queue = await channel.declare_queue(BASELINE_QUEUE, durable=True)
        await queue.bind(exchange, routing_key=TOPIC)
        await queue.consume(on_message)
        ready()
        async with asyncio.timeout(run_timeout(n)):
            await tally.done.wait()
    return tally


async def consume_moksha(n: int, broker: str, ready: Callable[[], None]) -> Tally:
    """A CentralMokshaHub running one ``async def consume`` consumer."""
    tally = Tally(n)
    consumers = [moksha_consumer_class(tally)]
    async with CentralMokshaHub(moksha_config(broker), consumers=consumers, producers=[]) as hub:
        if not hub.backends[0].connected or len(hub.consumers) != 1:
            raise RuntimeError("the Moksha consumer did not connect or did not start")
        ready()
        async with asyncio.timeout(run_timeout(n)):
            await tally.done.wait()
    return tally


def consumer_main(side: str, n: int, broker: str, pipe: Connection) -> None:
    """Consumer process: set up, say "ready", consume ``n`` messages, send the tally."""
    consume = consume_baseline if side == "aio-pika" else consume_moksha
    tally = asyncio.run(consume(n, broker, lambda: pipe.send("ready")))
    pipe.send(tally.report())


# -- the publisher process ---------------------------------------------------


Publish = Callable[[str, dict[str, Any]], Awaitable[Any]]


async def publish_windows(
    publish: Publish, bodies: Sequence[dict[str, Any]], window: int
) -> tuple[float, float]:
    """Warm up, then publish ``bodies`` ``window`` at a time; returns (started, finished)."""
    warm = bodies[:WARMUP]
    for i in range(0, len(warm), window):
        await asyncio.gather(*(publish(WARMUP_TOPIC, body) for body in warm[i : i + window]))
    async with asyncio.timeout(run_timeout(len(bodies))):
        started = time.monotonic()
        for i in range(0, len(bodies), window):
            await asyncio.gather(*(publish(TOPIC, body) for body in bodies[i : i + window]))
        return started, time.monotonic()


async def publish_baseline(bodies: Sequence[dict[str, Any]], broker: str, window: int) -> Any:
    """Raw aio-pika: publisher confirms, ``mandatory=False``, persistent JSON messages."""
    connection = await aio_pika.connect(broker, timeout=SETUP_TIMEOUT)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EXCHANGE)

        async def publish(topic: str, body: dict[str, Any]) -> None:
            message = aio_pika.Message(
                json.dumps(body).encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await exchange.publish(message, topic, mandatory=False)

        return await publish_windows(publish, bodies, window)


async def publish_moksha(bodies: Sequence[dict[str, Any]], broker: str, window: int) -> Any:
    """A MokshaHub with the amqp backend: ``await hub.publish(topic, body)``."""
    async with MokshaHub(moksha_config(broker)) as hub:
        if not hub.backends[0].connected:
            raise RuntimeError("the Moksha publisher did not connect")
        return await publish_windows(hub.publish, bodies, window)


def publisher_main(side: str, n: int, broker: str, window: int, pipe: Connection) -> None:
    """Publisher process: publish ``n`` bodies, send (started, finished)."""
    publish = publish_baseline if side == "aio-pika" else publish_moksha
    pipe.send(asyncio.run(publish(make_bodies(n), broker, window)))


# -- publishing from plain Python (hub.send_message), kept apart ---------------

PLAIN_TARGET = 0.80


def plain_moksha(bodies: Sequence[dict[str, Any]], broker: str) -> float:
    """``hub.send_message`` from plain Python, then ``hub.flush()``; msgs/s to the last confirm."""
    hub = MokshaHub(moksha_config(broker))  # no loop here: the hub runs its own thread
    try:
        if not hub.backends[0].connected:
            raise RuntimeError("the Moksha publisher did not connect")
        for body in bodies[:WARMUP]:
            hub.send_message(WARMUP_TOPIC, body)
        hub.flush()
        started = time.monotonic()
        for body in bodies:
            hub.send_message(TOPIC, body)
        hub.flush()  # raises if any failed
        return len(bodies) / (time.monotonic() - started)
    finally:
        hub.close()


def plain_baseline(bodies: Sequence[dict[str, Any]], broker: str, window: int) -> float:
    """Raw aio-pika with confirms in windows (:func:`publish_baseline`); msgs/s."""
    started, finished = asyncio.run(publish_baseline(bodies, broker, window))
    return len(bodies) / (finished - started)


def run_plain_publishing(n: int, broker: str, window: int, repeat: int) -> None:
    """Measure and print the plain-Python publishing case (both sides, same run)."""
    bodies = make_bodies(n)
    rates: dict[str, list[float]] = {"aio-pika": [], "moksha": []}
    for r in range(repeat):
        order = ["aio-pika", "moksha"] if r % 2 == 0 else ["moksha", "aio-pika"]
        for side in order:
            # A bound durable queue, as in the other cases: persistent messages are stored.
            asyncio.run(reset_queue(broker, BASELINE_QUEUE, declare=True))
            try:
                if side == "moksha":
                    rates[side].append(plain_moksha(bodies, broker))
                else:
                    rates[side].append(plain_baseline(bodies, broker, window))
            finally:
                asyncio.run(reset_queue(broker, BASELINE_QUEUE, declare=False))
    medians = {side: statistics.median(runs) for side, runs in rates.items()}
    ratio = medians["moksha"] / medians["aio-pika"]
    verdict = "PASS" if ratio >= PLAIN_TARGET else "FAIL"
    print("\npublishing from plain Python (first publish to the last confirm, one process)")
    print(f"{'side':<42} {'msgs/s (median)':>16}   runs")
    labels = {
        "aio-pika": f"aio-pika, confirms in windows of {window}",
        "moksha": "Moksha hub.send_message + flush()",
    }
    for side, runs in rates.items():
        every = ", ".join(f"{rate:,.0f}" for rate in runs)
        print(f"{labels[side]:<42} {medians[side]:>16,.0f}   {every}")
    print(f"ratio Moksha / aio-pika: {ratio:.2f}  (target >= {PLAIN_TARGET:.2f}: {verdict})")


# -- the parent: one run of one side, and the whole benchmark ----------------


@dataclass
class Run:
    rate: float  # msgs/s: end to end, or the consumer draining a full queue
    publishing: float  # msgs/s, first publish to the last confirm


async def reset_queue(broker: str, name: str, *, declare: bool) -> None:
    """Delete the queue ``name`` (missing is fine); with ``declare``, create it empty and bound.

    It is declared as both consumers declare theirs (durable, no arguments),
    so their own declaration finds it as it is.
    """
    connection = await aio_pika.connect(broker, timeout=SETUP_TIMEOUT)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)
        if declare:
            queue = await channel.declare_queue(name, durable=True)
            await queue.bind(await channel.get_exchange(EXCHANGE), routing_key=TOPIC)


def _receive(pipe: Connection, timeout: float, what: str) -> Any:
    if not pipe.poll(timeout):
        raise RuntimeError(f"{what}: nothing within {timeout:g}s")
    return pipe.recv()


def _stop(process: multiprocessing.process.BaseProcess) -> None:
    if process.pid is None:
        return  # never started
    process.join(SETUP_TIMEOUT)
    if process.is_alive():
        process.terminate()
        process.join(SETUP_TIMEOUT)


def run_side(side: str, n: int, broker: str, window: int, *, drain: bool) -> Run:
    """One measured run of one side.

    End to end (``drain`` false): the consumer process is ready, then the
    publisher process publishes; timed from the first publish to the N-th
    message consumed.  Drain: the queue is declared, filled with all N
    messages (the publisher is done), then the consumer process starts;
    timed from its first message to its N-th.
    """
    context = multiprocessing.get_context("spawn")
    queue = BASELINE_QUEUE if side == "aio-pika" else moksha_queue_name()
    # Empty, so nothing is left over from an aborted run.
    asyncio.run(reset_queue(broker, queue, declare=drain))
    consumer_pipe, child = context.Pipe()
    consumer = context.Process(target=consumer_main, args=(side, n, broker, child))
    publisher_pipe, child = context.Pipe()
    publisher = context.Process(target=publisher_main, args=(side, n, broker, window, child))
    limit = SETUP_TIMEOUT + run_timeout(n)
    try:
        if drain:
            publisher.start()
            started, published = _receive(publisher_pipe, limit, f"{side} publisher")
        consumer.start()
        if _receive(consumer_pipe, SETUP_TIMEOUT, f"{side} consumer start") != "ready":
            raise RuntimeError(f"{side} consumer: unexpected message")
        if not drain:
            publisher.start()
            started, published = _receive(publisher_pipe, limit, f"{side} publisher")
        first, finished, distinct, duplicates, total = _receive(
            consumer_pipe, limit, f"{side} consumer"
        )
    finally:
        _stop(publisher)
        _stop(consumer)
        asyncio.run(reset_queue(broker, queue, declare=False))
    if distinct != n or duplicates or total != n * (n - 1) // 2:
        raise RuntimeError(
            f"{side}: {distinct} of {n} messages arrived, {duplicates} twice, or not the ones sent"
        )
    publishing = n / (published - started)
    if drain:
        return Run((n - 1) / (finished - first), publishing)
    return Run(n / (finished - started), publishing)


async def broker_version(broker: str) -> str:
    """RabbitMQ's version; exits with a clear message when the broker cannot be reached."""
    try:
        connection = await aio_pika.connect(broker, timeout=5)
    except (TimeoutError, OSError, aiormq.exceptions.AMQPError) as exc:
        raise SystemExit(
            f"RabbitMQ is not reachable at 127.0.0.1:5672 as guest/guest ({exc or type(exc)}).\n"
            "Start it (e.g. `rabbitmq-server`, or `docker run -p 5672:5672 rabbitmq`) and retry."
        ) from None
    async with connection:
        properties = connection.transport.connection.server_properties
        version = properties.get("version", b"?")
        return version.decode() if isinstance(version, bytes) else str(version)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (median)")
    parser.add_argument("--window", type=int, default=100, help="concurrent publishes")
    parser.add_argument(
        "--plain-only", action="store_true", help="only publishing from plain Python"
    )
    args = parser.parse_args(argv)
    if args.messages < 1 or args.repeat < 1 or args.window < 1:
        parser.error("--messages, --repeat and --window must be at least 1")
    version = asyncio.run(broker_version(BROKER))
    size = statistics.mean(len(json.dumps(body)) for body in make_bodies(args.messages))
    print(
        f"python {platform.python_version()}, aio-pika {metadata.version('aio-pika')}, "
        f"aiormq {metadata.version('aiormq')}, RabbitMQ {version} on 127.0.0.1:5672"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; messages: {args.messages} "
        f"(body {size:.0f} bytes), publish window: {args.window}, repeat: {args.repeat} (median)"
    )
    began = time.perf_counter()
    if args.plain_only:
        run_plain_publishing(args.messages, BROKER, args.window, args.repeat)
        print(f"\ntotal time {time.perf_counter() - began:.1f} s")
        return 0
    cases = {"end to end": False, "drain a full queue": True}
    runs: dict[tuple[str, str], list[Run]] = {}
    for case, drain in cases.items():
        for r in range(args.repeat):
            # Alternate which goes first, so drift on a noisy machine hits both alike.
            for side in SIDES if r % 2 == 0 else SIDES[::-1]:
                run = run_side(side, args.messages, BROKER, args.window, drain=drain)
                runs.setdefault((case, side), []).append(run)
    moksha = report(runs, "end to end", "publish while consuming: first publish to N-th consumed")
    report(runs, "drain a full queue", "consumer only: its first message to its N-th")
    run_plain_publishing(args.messages, BROKER, args.window, args.repeat)
    print("\ncontext only (FIELD-NOTES, other runs on this kind of machine, same broker):")
    for name, rate in PEERS:
        print(f"  {name:<38} ~{rate:>6,} msgs/s   Moksha end to end here: {moksha / rate:.2f}x")
    print(f"\ntotal time {time.perf_counter() - began:.1f} s")
    return 0


def report(runs: dict[tuple[str, str], list[Run]], case: str, how: str) -> float:
    """Print one case's table and ratio; returns Moksha's median rate."""
    labels = {"aio-pika": "aio-pika (raw)", "moksha": "Moksha (MokshaHub -> Central)"}
    medians = {side: statistics.median(run.rate for run in runs[case, side]) for side in SIDES}
    print(f"\n{case} ({how})")
    print(f"{'side':<30} {'msgs/s (median)':>16} {'publish msgs/s':>15}   runs")
    for side in SIDES:
        publishing = statistics.median(run.publishing for run in runs[case, side])
        every = ", ".join(f"{run.rate:,.0f}" for run in runs[case, side])
        print(f"{labels[side]:<30} {medians[side]:>16,.0f} {publishing:>15,.0f}   {every}")
    print(f"ratio Moksha / aio-pika: {medians['moksha'] / medians['aio-pika']:.2f}")
    return medians["moksha"]


if __name__ == "__main__":
    sys.exit(main())
