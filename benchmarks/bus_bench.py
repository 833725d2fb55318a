"""The harness of ``bench_mqtt.py`` and ``bench_nats.py``: sides in two processes, timed alike.

Also Moksha's side of them (:func:`consume_with_hub`, :func:`publish_with_hub`), so
that each backend's benchmark measures the hub doing the same work.

Each side has a *consumer* (``consume(n, ready)``: subscribes, calls
``ready()``, returns a :class:`Tally` once the N-th distinct message was
worked on) and a *publisher* (``publish(bodies, window)``: returns its start
and end on ``time.monotonic()``, which is one clock for every process).

Two measures, each side in its own pair of processes, the sides taking turns
going first in each repeat:

* **end to end**: the consumer is subscribed; first publish to N-th consumed;
* **drain**: the consumer's durable state (session, durable consumer) is made
  and left, the N messages are published while nobody consumes, then a
  consumer starts: from its start to the N-th consumed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from moksha.config import Config
from moksha.hub import CentralMokshaHub, MokshaHub
from moksha.hub.api import Consumer
from moksha.message import Message

Consume = Callable[[int, Callable[[], None]], Any]  # returns a Tally (or a coroutine of one)
Publish = Callable[[Sequence[dict[str, Any]], int], Any]  # returns (started, finished)

SETUP_TIMEOUT = 30.0


def make_bodies(n: int) -> list[dict[str, Any]]:
    """``n`` distinct dict bodies of about 200 bytes of JSON each."""
    text = "lorem ipsum dolor sit amet, consectetur adipiscing elit " * 2
    return [
        {"seq": i, "user": f"user{i % 97}", "kind": "bench.sample", "ok": True,
         "value": i * 0.5, "text": text[:100]}
        for i in range(n)
    ]  # fmt: skip


def body_size(n: int) -> float:
    return statistics.mean(len(json.dumps(body)) for body in make_bodies(min(n, 1000)))


def run_timeout(n: int) -> float:
    return 30.0 + n / 300


class Prepared(Exception):
    """Raised by ``ready()`` in a drain's first phase: the durable state exists, leave."""


class Tally:
    """The consumer's work on every side: count each ``seq`` once; ``on_done`` at the N-th."""

    def __init__(self, n: int, on_done: Callable[[], None]) -> None:
        self.n = n
        self.seen = bytearray(n)
        self.distinct = self.duplicates = 0
        self.finished_at = 0.0
        self._on_done = on_done

    def work(self, body: dict[str, Any]) -> None:
        seq = body["seq"]
        if self.seen[seq]:
            self.duplicates += 1
            return
        self.seen[seq] = 1
        self.distinct += 1
        if self.distinct == self.n:
            self.finished_at = time.monotonic()
            self._on_done()


async def sliding(
    publish: Callable[[Any], Awaitable[Any]], bodies: Sequence[Any], window: int
) -> None:
    """Publish every body, at most ``window`` awaiting their ack at once."""
    pending: collections.deque[asyncio.Future[Any]] = collections.deque()
    for body in bodies:
        if len(pending) >= window:
            await pending.popleft()
        pending.append(asyncio.ensure_future(publish(body)))
    for waiting in pending:
        await waiting


async def consume_with_hub(
    config: Config, topic: str, name: tuple[str, str], n: int, ready: Callable[[], None]
) -> Tally:
    """Moksha's consumer: a central hub running one ``async def consume`` class on ``topic``.

    ``name`` is the class's module and qualified name: what its durable queue is
    named after, so a drain's second hub reads what the first one left.
    """
    done = asyncio.Event()
    tally = Tally(n, done.set)

    class BenchConsumer(Consumer):
        __module__, __qualname__ = name

        async def consume(self, message: Message) -> None:
            tally.work(message.body)

    BenchConsumer.topic = topic
    async with CentralMokshaHub(config, [BenchConsumer], []) as hub:
        if not hub.backends[0].connected or len(hub.consumers) != 1:
            raise RuntimeError("the Moksha consumer did not connect or did not start")
        ready()
        async with asyncio.timeout(run_timeout(n)):
            await done.wait()
    return tally


async def publish_with_hub(
    config: Config, topic: str, bodies: Sequence[dict[str, Any]], window: int
) -> tuple[float, float]:
    """Moksha's publisher: ``MokshaHub.publish`` with at most ``window`` awaiting the broker."""
    async with MokshaHub(config) as hub:
        started = time.monotonic()
        await sliding(lambda body: hub.publish(topic, body), bodies, window)
        return started, time.monotonic()


def _run(outcome: Any) -> Any:
    return asyncio.run(outcome) if asyncio.iscoroutine(outcome) else outcome


def _consumer_main(consume: Consume, n: int, drain: bool, pipe: Connection) -> None:
    if drain:

        def prepared() -> None:
            raise Prepared

        with contextlib.suppress(Prepared):
            _run(consume(n, prepared))
        pipe.send("ready")
        if pipe.recv() != "go":
            return
        started = time.monotonic()
        tally = _run(consume(n, lambda: None))
    else:
        started = 0.0
        tally = _run(consume(n, lambda: pipe.send("ready")))
    pipe.send((started, tally.finished_at, tally.distinct, tally.duplicates))


def _publisher_main(publish: Publish, n: int, window: int, pipe: Connection) -> None:
    pipe.send(_run(publish(make_bodies(n), window)))


def _receive(pipe: Connection, timeout: float, what: str) -> Any:
    if not pipe.poll(timeout):
        raise RuntimeError(f"{what}: nothing within {timeout:g}s")
    return pipe.recv()


def _stop(process: multiprocessing.process.BaseProcess) -> None:
    if process.pid is None:
        return
    process.join(SETUP_TIMEOUT)
    if process.is_alive():
        process.terminate()
        process.join(SETUP_TIMEOUT)


def run_once(consume: Consume, publish: Publish, n: int, window: int, drain: bool) -> float:
    """One run of one side; returns messages per second."""
    context = multiprocessing.get_context("spawn")
    consumer_pipe, child = context.Pipe()
    consumer = context.Process(target=_consumer_main, args=(consume, n, drain, child))
    publisher_pipe, child = context.Pipe()
    publisher = context.Process(target=_publisher_main, args=(publish, n, window, child))
    limit = SETUP_TIMEOUT + run_timeout(n)
    try:
        consumer.start()
        if _receive(consumer_pipe, SETUP_TIMEOUT, "consumer start") != "ready":
            raise RuntimeError("consumer: unexpected message")
        publisher.start()
        published_from, _ = _receive(publisher_pipe, limit, "publisher")
        if drain:
            consumer_pipe.send("go")
        started, finished, distinct, _duplicates = _receive(consumer_pipe, limit, "consumer")
    finally:
        _stop(publisher)
        _stop(consumer)
    if distinct != n:
        raise RuntimeError(f"{distinct} of {n} arrived")
    return n / (finished - (started if drain else published_from))


def compare(
    sides: dict[str, tuple[Consume, Publish]],
    *,
    n: int,
    window: int,
    repeat: int,
    drain: bool,
    cleanup: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, list[float]]:
    """Every side ``repeat`` times (turns rotating); msgs/s of each run by side."""
    names = list(sides)
    runs: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if cleanup is not None:
                asyncio.run(cleanup())
            runs[name].append(run_once(*sides[name], n, window, drain))
    if cleanup is not None:
        asyncio.run(cleanup())
    return runs


def report(title: str, runs: dict[str, list[float]], base: str, targets: dict[str, float]) -> None:
    """Print medians and the ratios of Moksha to each other side."""
    print(f"\n{title}")
    print(f"{'side':<28} {'msgs/s (median)':>16}   runs")
    medians = {side: statistics.median(rates) for side, rates in runs.items()}
    for side, rates in runs.items():
        every = ", ".join(f"{rate:,.0f}" for rate in rates)
        print(f"{side:<28} {medians[side]:>16,.0f}   {every}")
    for side, median in medians.items():
        if side == base:
            continue
        ratio = medians[base] / median
        target = targets.get(side)
        verdict = (
            f" (target >= {target}: {'PASS' if ratio >= target else 'MISS'})" if target else ""
        )
        print(f"ratio {base} / {side}: {ratio:.2f}{verdict}")
