"""Memory-bus throughput, publish to consume, against the minimal hand-off.

For an ``async def`` consumer and a plain (threaded) consumer, this measures

* the *baseline*: the same bodies handed through one bounded queue to the same
  consume function, with nothing else in between (``asyncio.Queue`` read by
  one task; ``queue.Queue`` read by one worker thread, filled from the event
  loop the way the hub fills a consumer's backlog);
* the *hub*: ``await hub.publish(topic, body)`` on a
  ``CentralMokshaHub`` with the memory backend, to one consumer whose
  ``consume`` calls that same function with ``message.body``;

each timed from the first publish to the last consume, and prints the median
rate of each and their ratio (hub / baseline).  Target: ratio >= 0.50.

And from plain Python (no event loop in the caller's thread, as a script or a
WSGI app publishes), for the same two consumers:

* the *baseline*: the same bodies ``put`` on a bounded ``queue.Queue`` read by
  one worker thread that calls the consume function;
* the *hub*: ``hub.send_message(topic, body)`` in a loop on a
  ``CentralMokshaHub`` created from plain Python (its loop in a background
  thread), timed to the last consume.  Target: ratio >= 0.50.

Run from the repository root::

    python benchmarks/bench_memory_bus.py [--messages N] [--repeat R] [--loop auto|asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import queue
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer
from moksha.message import Message

TOPIC = "bench.memory.event"
BACKLOG = 10_000  # the hub's default moksha.consumer_backlog, and the baseline's queue size
TARGET = 0.50
_STOP: Any = object()


def make_bodies(n: int) -> list[dict[str, Any]]:
    """``n`` distinct dict bodies of about 200 bytes of JSON each."""
    text = "lorem ipsum dolor sit amet, consectetur adipiscing elit " * 2
    return [
        {
            "seq": i,
            "user": f"user{i % 97}",
            "kind": "bench.sample",
            "ok": True,
            "value": i * 0.5,
            "text": text[:110],
        }
        for i in range(n)
    ]


class Sink:
    """The consumer's work, shared by the baseline and the hub: look at the body, count.

    At the ``n``-th message it records the time and calls ``done`` (which wakes
    the event loop: directly for async consumers, thread-safely for threads).

    Both sides reach :meth:`work` through one wrapper of the same kind, so they
    do the same work per message: the baseline's reader calls
    ``consume(body)`` (:meth:`consume` / :meth:`aconsume`), the hub calls the
    consumer's ``consume(message)``, which calls ``work(message.body)``.
    """

    def __init__(self, n: int, done: Callable[[], None]) -> None:
        self.n = n
        self.count = 0
        self.total = 0
        self.finished_at = 0.0
        self._done = done

    def work(self, body: dict[str, Any]) -> None:
        self.total += body["seq"]
        self.count += 1
        if self.count == self.n:
            self.finished_at = time.perf_counter()
            self._done()

    def consume(self, body: dict[str, Any]) -> None:
        self.work(body)

    async def aconsume(self, body: dict[str, Any]) -> None:
        self.work(body)


def _timeout(n: int) -> float:
    # Generous: even 5k msgs/s finishes well inside it; a hang fails instead of spinning.
    return 30.0 + n / 5_000


def _check(sink: Sink, n: int, bodies: Sequence[dict[str, Any]]) -> None:
    if sink.count != n or sink.total != sum(b["seq"] for b in bodies):
        raise RuntimeError(f"consumed {sink.count} of {n} messages, or not the ones sent")


# -- baselines -------------------------------------------------------------


async def baseline_async(bodies: Sequence[dict[str, Any]]) -> float:
    """Bodies through one bounded asyncio.Queue to one task; returns msgs/s.

    The hand-off is the queue's own API, one ``await backlog.put(body)`` per
    message and one ``await backlog.get()`` per message, as a program passing
    messages to a task would write it (and as the hub is used: one ``await
    hub.publish()`` per message).
    """
    n = len(bodies)
    done = asyncio.Event()
    sink = Sink(n, done.set)
    consume = sink.aconsume
    backlog: asyncio.Queue[Any] = asyncio.Queue(BACKLOG)

    async def reader() -> None:
        while (body := await backlog.get()) is not _STOP:
            await consume(body)

    task = asyncio.create_task(reader())
    started = time.perf_counter()
    for body in bodies:
        await backlog.put(body)
    async with asyncio.timeout(_timeout(n)):
        await done.wait()
        await backlog.put(_STOP)
        await task
    _check(sink, n, bodies)
    return n / (sink.finished_at - started)


def _wake_all(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


class _ThreadHandoff:
    """queue.Queue to one worker thread, filled from the loop as the hub fills it."""

    def __init__(self, consume: Callable[[Any], None], loop: asyncio.AbstractEventLoop) -> None:
        self.backlog: queue.Queue[Any] = queue.Queue(BACKLOG)
        self.space_waiters: list[asyncio.Future[None]] = []
        self._consume = consume
        self._loop = loop
        self.thread = threading.Thread(target=self._run, name="bench worker", daemon=True)

    async def put(self, item: Any) -> None:
        # Same policy as ConsumerRunner._put for a threaded consumer.
        backlog = self.backlog
        while True:
            try:
                backlog.put_nowait(item)
                return
            except queue.Full:
                pass
            waiter: asyncio.Future[None] = self._loop.create_future()
            self.space_waiters.append(waiter)
            try:
                backlog.put_nowait(item)
                return
            except queue.Full:
                await waiter

    def _run(self) -> None:
        backlog = self.backlog
        consume = self._consume
        while True:
            item = backlog.get()
            if self.space_waiters:
                waiters, self.space_waiters = self.space_waiters, []
                self._loop.call_soon_threadsafe(_wake_all, waiters)
            if item is _STOP:
                return
            consume(item)


async def baseline_sync(bodies: Sequence[dict[str, Any]]) -> float:
    """Bodies through one bounded queue.Queue to one worker thread; returns msgs/s."""
    n = len(bodies)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    sink = Sink(n, lambda: loop.call_soon_threadsafe(done.set))
    handoff = _ThreadHandoff(sink.consume, loop)
    handoff.thread.start()
    try:
        started = time.perf_counter()
        for body in bodies:
            await handoff.put(body)
        async with asyncio.timeout(_timeout(n)):
            await done.wait()
    finally:
        await handoff.put(_STOP)
        await asyncio.to_thread(handoff.thread.join, _timeout(n))
    _check(sink, n, bodies)
    return n / (sink.finished_at - started)


# -- the hub ---------------------------------------------------------------


def _consumer_class(sink: Sink, is_async: bool) -> type[Consumer]:
    if is_async:

        class AsyncBenchConsumer(Consumer):
            topic = TOPIC

            async def consume(self, message: Message) -> None:
                sink.work(message.body)

        return AsyncBenchConsumer

    class SyncBenchConsumer(Consumer):
        topic = TOPIC

        def consume(self, message: Message) -> None:
            sink.work(message.body)

    return SyncBenchConsumer


async def hub_run(bodies: Sequence[dict[str, Any]], is_async: bool) -> float:
    """Bodies published on a memory-bus hub to one consumer; returns msgs/s."""
    n = len(bodies)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    sink = Sink(n, done.set if is_async else lambda: loop.call_soon_threadsafe(done.set))
    config = {"moksha.backends": "memory", "moksha.consumer_backlog": BACKLOG}
    consumers = [_consumer_class(sink, is_async)]
    async with CentralMokshaHub(config, consumers=consumers, producers=[]) as hub:
        publish = hub.publish
        started = time.perf_counter()
        for body in bodies:
            await publish(TOPIC, body)
        async with asyncio.timeout(_timeout(n)):
            await done.wait()
    _check(sink, n, bodies)
    return n / (sink.finished_at - started)


# -- from plain Python ----------------------------------------------------


def plain_baseline(bodies: Sequence[dict[str, Any]]) -> float:
    """Bodies ``put`` from this thread on a bounded queue.Queue read by one thread; msgs/s."""
    n = len(bodies)
    done = threading.Event()
    sink = Sink(n, done.set)
    backlog: queue.Queue[Any] = queue.Queue(BACKLOG)
    consume = sink.consume

    def reader() -> None:
        while (body := backlog.get()) is not _STOP:
            consume(body)

    thread = threading.Thread(target=reader, name="bench worker", daemon=True)
    thread.start()
    started = time.perf_counter()
    put = backlog.put
    for body in bodies:
        put(body)
    finished = done.wait(_timeout(n))
    backlog.put(_STOP)
    thread.join(_timeout(n))
    if not finished:
        raise RuntimeError("the baseline's worker did not finish in time")
    _check(sink, n, bodies)
    return n / (sink.finished_at - started)


def plain_hub(bodies: Sequence[dict[str, Any]], is_async: bool) -> float:
    """Bodies sent with ``hub.send_message`` from plain Python to one consumer; msgs/s."""
    n = len(bodies)
    done = threading.Event()
    sink = Sink(n, done.set)
    config = {"moksha.backends": "memory", "moksha.consumer_backlog": BACKLOG}
    hub = CentralMokshaHub(config, consumers=[_consumer_class(sink, is_async)], producers=[])
    try:
        send = hub.send_message
        started = time.perf_counter()
        for body in bodies:
            send(TOPIC, body)
        if not done.wait(_timeout(n)):
            raise RuntimeError("the hub's consumer did not finish in time")
    finally:
        hub.close()
    _check(sink, n, bodies)
    return n / (sink.finished_at - started)


def run_plain_case(
    case: str, bodies: Sequence[dict[str, Any]], repeat: int, is_async: bool
) -> Result:
    base_rates: list[float] = []
    hub_rates: list[float] = []
    for r in range(repeat):
        runs = [
            (base_rates, lambda: plain_baseline(bodies)),
            (hub_rates, lambda: plain_hub(bodies, is_async)),
        ]
        for rates, run in runs if r % 2 == 0 else runs[::-1]:
            gc.collect()
            rates.append(run())
    return Result(case, base_rates, hub_rates)


def main_plain(n: int, repeat: int) -> list[Result]:
    bodies = make_bodies(n)
    warm = bodies[: min(n, 2_000)]
    plain_baseline(warm)
    for is_async in (True, False):
        plain_hub(warm, is_async)
    return [
        run_plain_case("plain Python, async", bodies, repeat, is_async=True),
        run_plain_case("plain Python, thread", bodies, repeat, is_async=False),
    ]


# -- the run ---------------------------------------------------------------


@dataclass
class Result:
    case: str
    baseline_runs: list[float]
    hub_runs: list[float]

    @property
    def baseline(self) -> float:
        return statistics.median(self.baseline_runs)

    @property
    def hub(self) -> float:
        return statistics.median(self.hub_runs)

    @property
    def ratio(self) -> float:
        return self.hub / self.baseline


async def _measure(run: Callable[[], Awaitable[float]]) -> float:
    gc.collect()
    return await run()


async def run_case(
    case: str, bodies: Sequence[dict[str, Any]], repeat: int, is_async: bool
) -> Result:
    baseline = baseline_async if is_async else baseline_sync
    base_rates: list[float] = []
    hub_rates: list[float] = []
    for r in range(repeat):
        # Alternate which goes first, so drift on a noisy machine hits both alike.
        runs = [
            (base_rates, lambda: baseline(bodies)),
            (hub_rates, lambda: hub_run(bodies, is_async)),
        ]
        for rates, run in runs if r % 2 == 0 else runs[::-1]:
            rates.append(await _measure(run))
    return Result(case, base_rates, hub_rates)


async def main_async(n: int, repeat: int) -> list[Result]:
    bodies = make_bodies(n)
    # One short warm-up of each path (imports, first-call costs), not measured.
    warm = bodies[: min(n, 2_000)]
    for is_async in (True, False):
        await (baseline_async(warm) if is_async else baseline_sync(warm))
        await hub_run(warm, is_async)
    return [
        await run_case("async consumer", bodies, repeat, is_async=True),
        await run_case("sync consumer (thread)", bodies, repeat, is_async=False),
    ]


def _loop_factory(choice: str) -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise SystemExit("uvloop is not installed (pip install 'moksha[fast]')") from None
        else:
            return uvloop.new_event_loop, f"uvloop {uvloop.__version__}"
    return asyncio.new_event_loop, "asyncio (default selector loop)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop (auto: uvloop when installed)",
    )
    args = parser.parse_args(argv)
    if args.messages < 1 or args.repeat < 1:
        parser.error("--messages and --repeat must be at least 1")
    factory, loop_name = _loop_factory(args.loop)
    print(f"python {platform.python_version()} ({sys.executable}), loop: {loop_name}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
        f"messages: {args.messages}, repeat: {args.repeat} (median)"
    )
    began = time.perf_counter()
    with asyncio.Runner(loop_factory=factory) as runner:
        results = runner.run(main_async(args.messages, args.repeat))
    # The hub from plain Python runs its own loop (uvloop when installed, as in use).
    results += main_plain(args.messages, args.repeat)
    print()
    print(f"{'case':<24} {'baseline msgs/s':>16} {'hub msgs/s':>12} {'ratio':>7}  target")
    print("(plain Python cases: baseline = queue.Queue put from the caller's thread to a thread)")
    for res in results:
        verdict = "PASS" if res.ratio >= TARGET else "FAIL"
        print(
            f"{res.case:<24} {res.baseline:>16,.0f} {res.hub:>12,.0f} {res.ratio:>7.2f}"
            f"  >= {TARGET:.2f} {verdict}"
        )
    print("\nevery run, msgs/s (spread shows noise; compare medians within one run only):")
    for res in results:
        for side, runs in (("baseline", res.baseline_runs), ("hub", res.hub_runs)):
            print(f"  {res.case:<24} {side:<8} " + " ".join(f"{r:>10,.0f}" for r in runs))
    print(f"\ntotal time {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
