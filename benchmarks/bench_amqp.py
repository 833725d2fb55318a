"""AMQP end-to-end throughput on RabbitMQ: Moksha against raw aio-pika and its peers.

``--messages`` distinct ~200-byte JSON bodies go publisher -> RabbitMQ
(``amq.topic``, routing key = topic) -> consumer, with the publisher and the
consumer in two separate processes.  Every side runs in the same mode:
persistent messages, publisher confirms awaited in windows of ``--window``
(100) concurrent publishes, a durable queue bound to ``amq.topic``, prefetch
100, each message acknowledged once its handler returned.  The sides, all
measured in this run:

* *aio-pika* (the baseline, the raw client): ``exchange.publish(...,
  mandatory=False)`` calls gathered per window; a consumer that acks by hand;
* *Moksha*: a ``MokshaHub`` (amqp backend) doing ``await hub.publish(...)``,
  gathered per window; a ``CentralMokshaHub`` running one consumer with
  ``async def consume`` (blocking mode, its durable queue, the default
  ``amqp_prefetch`` of 100);
* *FastStream* (``faststream[rabbit]``): ``await broker.publish(body,
  routing_key=..., exchange=amq.topic, persist=True, mandatory=False)``
  gathered per window; a ``@broker.subscriber`` on a durable queue with
  ``AckPolicy.ACK`` (ack after the handler) and a channel of prefetch 100;
* *fedora-messaging* (Twisted + pika, a sync API): its documented Twisted
  publish, ``twisted_publish(message)``, a window at a time (each fires once
  confirmed), started from the sync world through crochet as its own sync
  ``publish`` does; its sync ``consume(callback, bindings, queues)`` with
  ``qos.prefetch_count = 100`` (it acks once the callback returned).

Peers are optional (``pip install -e '.[bench]'``): a side whose library is not
installed is left out, and the script says so.  Two cases: *end to end* (the
consumer is ready, then the publisher starts; first publish to the N-th
message consumed) and *drain a full queue* (the queue is filled first; the
consumer's first message to its N-th).  Every consumer decodes each JSON body
and counts it: each run checks that every message arrived, once.  Prints each
side's median over ``--repeat`` runs and the ratios Moksha / aio-pika (target
>= 0.8) and Moksha / FastStream (target >= 1.5).  Queues are deleted before and
after each run.  Run from the repository root with RabbitMQ on 127.0.0.1:5672
(guest/guest)::

    python benchmarks/bench_amqp.py [--messages N] [--repeat R] [--window W]
        [--sides aio-pika,moksha,faststream,fedora-messaging] [--plain-only]

A further case, *publishing from plain Python* (issue 10): ``hub.send_message``
in a loop from a thread with no event loop (a script, a WSGI app), then
``hub.flush()`` until every message is confirmed, against the raw aio-pika
publisher above (confirms in windows of ``--window``), in one process, one
after the other, to the same bound durable queue.  Target: ratio >= 0.80.
``--plain-only`` runs just this case.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
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
# One name per invocation (spawned processes inherit it): several people may run this
# benchmark on one broker at once, and shared topics or queues would mix their messages.
RUN = os.environ.setdefault("BENCH_RUN_ID", uuid.uuid4().hex[:8])
TOPIC = f"bench.amqp.{RUN}.event"
WARMUP_TOPIC = f"bench.amqp.{RUN}.warmup"  # bound to no queue: the broker drops these
WARMUP = 300  # publishes before the clock starts: connection set up, first-call costs paid
PREFETCH = 100  # Moksha's default amqp_prefetch; the baseline consumer uses the same
SETUP_TIMEOUT = 30.0  # a process starting, connecting and declaring its queue
SIDES = ("aio-pika", "moksha", "faststream", "fedora-messaging")
# The peers' libraries, from the benchmark-only extra: pip install -e '.[bench]'.
PEER_MODULES = {"faststream": "faststream.rabbit", "fedora-messaging": "fedora_messaging.api"}
QUEUES = {
    "aio-pika": f"bench.amqp.{RUN}.baseline",
    "faststream": f"bench.amqp.{RUN}.faststream",
    "fedora-messaging": f"bench.amqp.{RUN}.fedora",
}  # Moksha's: moksha_queue_name()


def make_bodies(n: int) -> list[dict[str, Any]]:
    """``n`` distinct dict bodies of about 200 bytes of JSON each."""
    text = "lorem ipsum dolor sit amet, consectetur adipiscing elit " * 2
    return [
        {"seq": i, "user": f"user{i % 97}", "kind": "bench.sample", "ok": True,
         "value": i * 0.5, "text": text[:100]}
        for i in range(n)
    ]  # fmt: skip


def run_timeout(n: int) -> float:
    # Generous: even 100 msgs/s (fedora-messaging's pace on a loaded machine) fits in it.
    return 60.0 + n / 100


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
        __qualname__ = f"AMQPBenchConsumer_{RUN}"
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
        queue = await channel.declare_queue(QUEUES["aio-pika"], durable=True)
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


async def consume_faststream(n: int, broker: str, ready: Callable[[], None]) -> Tally:
    """FastStream: a subscriber on a durable queue, ack after the handler, prefetch 100."""
    from faststream import AckPolicy
    from faststream.rabbit import Channel, ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue

    tally = Tally(n)
    rabbit = RabbitBroker(broker, default_channel=Channel(prefetch_count=PREFETCH), logger=None)
    exchange = RabbitExchange(EXCHANGE, type=ExchangeType.TOPIC, declare=False)
    queue = RabbitQueue(QUEUES["faststream"], durable=True, routing_key=TOPIC)

    @rabbit.subscriber(queue, exchange, ack_policy=AckPolicy.ACK)
    async def handle(body: dict[str, Any]) -> None:
        tally.work(body)

    async with rabbit:
        await rabbit.start()
        ready()
        async with asyncio.timeout(run_timeout(n)):
            await tally.done.wait()
    return tally


def fedora_config(broker: str, directory: str) -> str:
    """A fedora-messaging config file: the same broker, ``amq.topic``, prefetch 100."""
    path = os.path.join(directory, "fedora-messaging.toml")
    with open(path, "w") as file:
        file.write(
            f'amqp_url = "{broker}"\npublish_exchange = "{EXCHANGE}"\n'
            f"[qos]\nprefetch_size = 0\nprefetch_count = {PREFETCH}\n"
            "[log_config]\nversion = 1\ndisable_existing_loggers = false\n"
            '[log_config.root]\nlevel = "WARNING"\nhandlers = []\n'
        )
    return path


def consume_fedora(n: int, broker: str, ready: Callable[[], None]) -> Tally:
    """fedora-messaging's sync ``consume``: acks once the callback returned (a Tally per call)."""
    from fedora_messaging import api, config
    from fedora_messaging.exceptions import HaltConsumer

    tally = Tally(n)
    with tempfile.TemporaryDirectory() as directory:
        config.conf.load_config(fedora_config(broker, directory))
    queue = QUEUES["fedora-messaging"]

    def callback(message: Any) -> None:
        tally.work(message.body)
        if tally.done.is_set():
            raise HaltConsumer(exit_code=0, requeue=False)

    bindings = [{"exchange": EXCHANGE, "queue": queue, "routing_keys": [TOPIC]}]
    queues = {queue: {"durable": True, "auto_delete": False, "exclusive": False, "arguments": {}}}
    ready()  # its queue is declared by the parent already: nothing published is lost
    with contextlib.suppress(HaltConsumer):
        api.consume(callback, bindings=bindings, queues=queues)
    return tally


CONSUMERS: dict[str, Callable[[int, str, Callable[[], None]], Any]] = {
    "aio-pika": consume_baseline,
    "moksha": consume_moksha,
    "faststream": consume_faststream,
    "fedora-messaging": consume_fedora,
}


def consumer_main(side: str, n: int, broker: str, pipe: Connection) -> None:
    """Consumer process: set up, say "ready", consume ``n`` messages, send the tally."""
    consume = CONSUMERS[side]
    outcome = consume(n, broker, lambda: pipe.send("ready"))
    tally = asyncio.run(outcome) if asyncio.iscoroutine(outcome) else outcome
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


async def publish_faststream(bodies: Sequence[dict[str, Any]], broker: str, window: int) -> Any:
    """FastStream: ``broker.publish`` with confirms (its default channel), persistent."""
    from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange

    exchange = RabbitExchange(EXCHANGE, type=ExchangeType.TOPIC, declare=False)
    async with RabbitBroker(broker, logger=None) as rabbit:

        async def publish(topic: str, body: dict[str, Any]) -> None:
            await rabbit.publish(
                body, routing_key=topic, exchange=exchange, persist=True, mandatory=False
            )

        return await publish_windows(publish, bodies, window)


def publish_fedora(bodies: Sequence[dict[str, Any]], broker: str, window: int) -> Any:
    """fedora-messaging: ``twisted_publish`` a window at a time, confirmed, via crochet."""
    import crochet
    from fedora_messaging import api, config
    from twisted.internet import defer

    with tempfile.TemporaryDirectory() as directory:
        config.conf.load_config(fedora_config(broker, directory))

    @crochet.run_in_reactor
    def publish_window(topic: str, window_bodies: Sequence[dict[str, Any]]) -> Any:
        messages = [api.Message(topic=topic, body=body) for body in window_bodies]
        return defer.gatherResults([api.twisted_publish(m) for m in messages], consumeErrors=True)

    def publish_all(topic: str, all_bodies: Sequence[dict[str, Any]]) -> None:
        for i in range(0, len(all_bodies), window):
            publish_window(topic, all_bodies[i : i + window]).wait(SETUP_TIMEOUT)

    # The sync publish sets the Twisted service up (and is the warm-up's first message).
    api.publish(api.Message(topic=WARMUP_TOPIC, body=bodies[0]))
    publish_all(WARMUP_TOPIC, bodies[:WARMUP])
    started = time.monotonic()
    publish_all(TOPIC, bodies)
    return started, time.monotonic()


PUBLISHERS: dict[str, Callable[[Sequence[dict[str, Any]], str, int], Any]] = {
    "aio-pika": publish_baseline,
    "moksha": publish_moksha,
    "faststream": publish_faststream,
    "fedora-messaging": publish_fedora,
}


def publisher_main(side: str, n: int, broker: str, window: int, pipe: Connection) -> None:
    """Publisher process: publish ``n`` bodies, send (started, finished)."""
    outcome = PUBLISHERS[side](make_bodies(n), broker, window)
    pipe.send(asyncio.run(outcome) if asyncio.iscoroutine(outcome) else outcome)


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
            asyncio.run(reset_queue(broker, QUEUES["aio-pika"], declare=True))
            try:
                if side == "moksha":
                    rates[side].append(plain_moksha(bodies, broker))
                else:
                    rates[side].append(plain_baseline(bodies, broker, window))
            finally:
                asyncio.run(reset_queue(broker, QUEUES["aio-pika"], declare=False))
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
    queue = QUEUES.get(side) or moksha_queue_name()
    # Empty, so nothing is left over from an aborted run.  fedora-messaging's consumer
    # cannot say when it is ready: its queue is declared first, so no message is lost.
    asyncio.run(reset_queue(broker, queue, declare=drain or side == "fedora-messaging"))
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


def available_sides(wanted: Sequence[str]) -> list[str]:
    """``wanted`` without the peers whose library is not installed (said on stdout)."""
    sides = []
    for side in wanted:
        module = PEER_MODULES.get(side)
        if module is not None and importlib.util.find_spec(module.partition(".")[0]) is None:
            print(f"{side}: not installed, left out (pip install -e '.[bench]')")
            continue
        sides.append(side)
    return sides


def versions(sides: Sequence[str]) -> str:
    """The versions of the libraries measured."""
    named = [side for side in sides if side != "moksha"]  # distributions named as the sides
    return ", ".join(f"{side} {metadata.version(side)}" for side in named)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (median)")
    parser.add_argument("--window", type=int, default=100, help="concurrent publishes")
    parser.add_argument(
        "--sides", default=",".join(SIDES), help=f"comma-separated, among {', '.join(SIDES)}"
    )
    parser.add_argument(
        "--plain-only", action="store_true", help="only publishing from plain Python"
    )
    args = parser.parse_args(argv)
    wanted = [side.strip() for side in args.sides.split(",") if side.strip()]
    if args.messages < 1 or args.repeat < 1 or args.window < 1:
        parser.error("--messages, --repeat and --window must be at least 1")
    if not wanted or any(side not in SIDES for side in wanted):
        parser.error(f"--sides takes names among {', '.join(SIDES)}")
    sides = available_sides(wanted)
    version = asyncio.run(broker_version(BROKER))
    size = statistics.mean(len(json.dumps(body)) for body in make_bodies(args.messages))
    print(
        f"python {platform.python_version()}, {versions(sides)}, "
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
            # Rotate which goes first, so drift on a noisy machine hits every side alike.
            for side in sides[r % len(sides) :] + sides[: r % len(sides)]:
                run = run_side(side, args.messages, BROKER, args.window, drain=drain)
                runs.setdefault((case, side), []).append(run)
    report(runs, sides, "end to end", "publish while consuming: first publish to N-th consumed")
    report(runs, sides, "drain a full queue", "consumer only: its first message to its N-th")
    if "moksha" in sides:
        run_plain_publishing(args.messages, BROKER, args.window, args.repeat)
    print(f"\ntotal time {time.perf_counter() - began:.1f} s")
    return 0


LABELS = {
    "aio-pika": "aio-pika (raw)",
    "moksha": "Moksha (MokshaHub -> Central)",
    "faststream": "FastStream",
    "fedora-messaging": "fedora-messaging",
}
# Moksha's targets, against the side named: at least this ratio.
TARGETS = {"aio-pika": 0.8, "faststream": 1.5}


def report(
    runs: dict[tuple[str, str], list[Run]], sides: Sequence[str], case: str, how: str
) -> None:
    """Print one case's table, and Moksha's ratio to each other side measured."""
    medians = {side: statistics.median(run.rate for run in runs[case, side]) for side in sides}
    print(f"\n{case} ({how})")
    print(f"{'side':<30} {'msgs/s (median)':>16} {'publish msgs/s':>15}   runs")
    for side in sides:
        publishing = statistics.median(run.publishing for run in runs[case, side])
        every = ", ".join(f"{run.rate:,.0f}" for run in runs[case, side])
        print(f"{LABELS[side]:<30} {medians[side]:>16,.0f} {publishing:>15,.0f}   {every}")
    if "moksha" not in medians:
        return
    for side in sides:
        if side == "moksha":
            continue
        ratio = medians["moksha"] / medians[side]
        target = TARGETS.get(side)
        verdict = ""
        if target is not None:
            verdict = f" (target >= {target}: {'PASS' if ratio >= target else 'MISS'})"
        print(f"ratio Moksha / {LABELS[side]}: {ratio:.2f}{verdict}")


if __name__ == "__main__":
    sys.exit(main())
