"""STOMP end-to-end throughput on RabbitMQ: Moksha against stomp.py and a minimal client.

``--messages`` distinct ~200-byte JSON bodies go publisher -> RabbitMQ's STOMP
plugin (127.0.0.1:61613, destination ``/topic/bench.stomp.event``, i.e. the
``amq.topic`` exchange) -> consumer, with the publisher and the consumer in two
separate processes.  Every side works in the same mode:

* the publisher sends SEND frames (``content-type: application/json``, not
  persistent) in windows of ``--window`` (100); each window is confirmed by a
  broker RECEIPT before the next one starts;
* the consumer subscribes with ``ack: auto`` to a durable, named queue
  (``durable: true``, ``auto-delete: false``, ``x-queue-name``), decodes each
  JSON body and counts it: each run checks that every message arrived, once.

The sides, all measured in this run:

* *minimal* (the baseline): the least code that does this on asyncio -- one
  ``asyncio.open_connection``, frames written as bytes, MESSAGE frames cut out
  of the stream by their ``content-length``; no heart-beats, no reconnection;
* *Moksha*: a ``MokshaHub`` (stomp backend, blocking mode: a publish returns
  once its receipt came, one receipt shared by concurrent publishes) doing
  ``await hub.publish(...)`` gathered per window; a ``CentralMokshaHub`` running
  one consumer with ``async def consume`` (its group's durable queue);
* *stomp.py* (threads): ``conn.send(...)``, the window's last frame asking
  for a receipt that a listener waits for; a listener's ``on_message`` on the
  receiver thread.

Timed from the first publish to the N-th message consumed; each side's median
over ``--repeat`` runs and the ratios Moksha / each other side (target: Moksha
>= stomp.py).  RabbitMQ reads the STOMP ``host`` header as the virtual host:
every side sends ``host:/``.  Queues are deleted (over AMQP) before and after
each run.  Needs ``pip install -e '.[bench]'`` for stomp.py (left out, with a
note, when missing).  Run from the repository root::

    python benchmarks/bench_stomp.py [--messages N] [--repeat R] [--window W]
        [--sides minimal,moksha,stomp.py]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from multiprocessing.connection import Connection
from typing import Any

import aio_pika

from moksha.config import Config, load_config
from moksha.hub import CentralMokshaHub, MokshaHub
from moksha.hub.api import Consumer
from moksha.hub.central import group_name
from moksha.message import Message

HOST, PORT = "127.0.0.1", 61613
AMQP = "amqp://guest:guest@127.0.0.1:5672/"  # only to delete the queues between runs
# One name per invocation (spawned processes inherit it): several people may run this
# benchmark on one broker at once, and shared topics or queues would mix their messages.
RUN = os.environ.setdefault("BENCH_RUN_ID", uuid.uuid4().hex[:8])
TOPIC = f"bench.stomp.{RUN}.event"
DESTINATION = f"/topic/{TOPIC}"
WARMUP = 300  # messages sent before the clock starts, to a topic no queue is bound to
WARMUP_DESTINATION = f"/topic/bench.stomp.{RUN}.warmup"
SETUP_TIMEOUT = 30.0
SIDES = ("minimal", "moksha", "stomp.py")
QUEUES = {side: f"bench.stomp.{RUN}.{side}" for side in ("minimal", "stomp.py")}  # + Moksha's


def make_bodies(n: int) -> list[dict[str, Any]]:
    """``n`` distinct dict bodies of about 200 bytes of JSON each."""
    text = "lorem ipsum dolor sit amet, consectetur adipiscing elit " * 2
    return [
        {"seq": i, "user": f"user{i % 97}", "kind": "bench.sample", "ok": True,
         "value": i * 0.5, "text": text[:100]}
        for i in range(n)
    ]  # fmt: skip


def run_timeout(n: int) -> float:
    return 30.0 + n / 500


class Tally:
    """The consumer's work on every side: count each ``seq`` once; ``on_done`` at the N-th."""

    def __init__(self, n: int, on_done: Callable[[], None]) -> None:
        self.n = n
        self.seen = bytearray(n)
        self.distinct = self.duplicates = self.total = 0
        self.finished_at = 0.0
        self._on_done = on_done

    def work(self, body: dict[str, Any]) -> None:
        seq = body["seq"]
        if self.seen[seq]:
            self.duplicates += 1
            return
        self.seen[seq] = 1
        self.total += seq
        self.distinct += 1
        if self.distinct == self.n:
            self.finished_at = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes
            self._on_done()

    def report(self) -> tuple[float, int, int, int]:
        return self.finished_at, self.distinct, self.duplicates, self.total


def subscribe_headers(queue: str) -> dict[str, str]:
    """A durable named queue on ``amq.topic``, as Moksha's consumer groups use."""
    return {"durable": "true", "auto-delete": "false", "x-queue-name": queue}


# -- the minimal asyncio client (the baseline) --------------------------------


def frame(command: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """One STOMP frame (header values here need no escaping)."""
    lines = "".join(f"{k}:{v}\n" for k, v in headers.items())
    return f"{command}\n{lines}\n".encode() + body + b"\0"


class MinimalClient:
    """Frames out as bytes; frames in cut by ``content-length``; RECEIPTs resolve futures."""

    def __init__(self, on_message: Callable[[bytes], None] | None = None) -> None:
        self.on_message = on_message
        self.receipts: dict[str, asyncio.Future[None]] = {}
        self._next = 0

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, PORT)
        headers = {"accept-version": "1.2", "host": "/", "login": "guest", "passcode": "guest"}
        self.writer.write(frame("CONNECT", headers))
        head = await self.reader.readuntil(b"\0")
        if not head.startswith(b"CONNECTED"):
            raise RuntimeError(f"minimal STOMP client: {head[:200]!r}")
        self.task = asyncio.create_task(self._read())

    def receipt(self) -> tuple[str, asyncio.Future[None]]:
        self._next += 1
        rid = str(self._next)
        self.receipts[rid] = asyncio.get_running_loop().create_future()
        return rid, self.receipts[rid]

    async def _read(self) -> None:
        buffer = b""
        while True:
            chunk = await self.reader.read(1 << 16)
            if not chunk:
                return
            buffer += chunk
            start = 0
            while True:
                while buffer[start : start + 1] in (b"\n", b"\r"):
                    start += 1  # heart-beats between frames
                end_of_headers = buffer.find(b"\n\n", start)
                if end_of_headers < 0:
                    break
                head = buffer[start:end_of_headers].decode().split("\n")
                headers = dict(line.split(":", 1) for line in head[1:])
                length = int(headers.get("content-length", "-1"))
                body_start = end_of_headers + 2
                body_end = body_start + length if length >= 0 else buffer.find(b"\0", body_start)
                if body_end < 0 or len(buffer) <= body_end:
                    break  # the frame is not whole yet
                if head[0] == "MESSAGE" and self.on_message is not None:
                    self.on_message(buffer[body_start:body_end])
                elif head[0] == "RECEIPT":
                    self.receipts.pop(headers["receipt-id"]).set_result(None)
                elif head[0] == "ERROR":
                    raise RuntimeError(f"minimal STOMP client: broker error {headers}")
                start = body_end + 1
            buffer = buffer[start:]

    async def close(self) -> None:
        self.writer.close()
        self.task.cancel()


async def consume_minimal(n: int, ready: Callable[[], None]) -> Tally:
    done = asyncio.Event()
    tally = Tally(n, done.set)
    client = MinimalClient(lambda body: tally.work(json.loads(body)))
    await client.connect()
    rid, confirmed = client.receipt()
    headers = {"id": "1", "destination": DESTINATION, "ack": "auto", "receipt": rid}
    client.writer.write(frame("SUBSCRIBE", headers | subscribe_headers(QUEUES["minimal"])))
    await asyncio.wait_for(confirmed, SETUP_TIMEOUT)
    ready()
    async with asyncio.timeout(run_timeout(n)):
        await done.wait()
    await client.close()
    return tally


async def publish_minimal(bodies: Sequence[dict[str, Any]], window: int) -> tuple[float, float]:
    client = MinimalClient()
    await client.connect()

    async def send_all(destination: str, batch: Sequence[dict[str, Any]]) -> None:
        for i in range(0, len(batch), window):
            chunk = batch[i : i + window]
            for j, body in enumerate(chunk):
                data = json.dumps(body).encode()
                headers = {"destination": destination, "content-type": "application/json",
                           "content-length": str(len(data))}  # fmt: skip
                if j == len(chunk) - 1:
                    rid, confirmed = client.receipt()
                    headers["receipt"] = rid
                client.writer.write(frame("SEND", headers, data))
            await client.writer.drain()
            await asyncio.wait_for(confirmed, SETUP_TIMEOUT)

    await send_all(WARMUP_DESTINATION, bodies[:WARMUP])
    started = time.monotonic()
    await send_all(DESTINATION, bodies)
    finished = time.monotonic()
    await client.close()
    return started, finished


# -- Moksha ---------------------------------------------------------------


def moksha_config() -> Config:
    overrides = {
        "moksha.backends": "stomp",
        "stomp_uri": f"{HOST}:{PORT}",
        "stomp_user": "guest",
        "stomp_pass": "guest",
        "moksha.blocking_mode": True,
    }
    return load_config(overrides=overrides, environ={}, search=False)


def moksha_consumer_class(tally: Tally) -> type[Consumer]:
    class StompBenchConsumer(Consumer):
        # A fixed name gives its durable queue a stable name, deleted around each run.
        __module__ = "bench_stomp"
        __qualname__ = f"StompBenchConsumer_{RUN}"
        topic = TOPIC

        async def consume(self, message: Message) -> None:
            tally.work(message.body)

    return StompBenchConsumer


def moksha_queue_name() -> str:
    return f"moksha.stomp.{group_name(moksha_consumer_class(Tally(1, lambda: None)))}"


async def consume_moksha(n: int, ready: Callable[[], None]) -> Tally:
    done = asyncio.Event()
    tally = Tally(n, done.set)
    consumers = [moksha_consumer_class(tally)]
    async with CentralMokshaHub(moksha_config(), consumers=consumers, producers=[]) as hub:
        if not hub.backends[0].connected or len(hub.consumers) != 1:
            raise RuntimeError("the Moksha consumer did not connect or did not start")
        ready()
        async with asyncio.timeout(run_timeout(n)):
            await done.wait()
    return tally


async def publish_moksha(bodies: Sequence[dict[str, Any]], window: int) -> tuple[float, float]:
    async with MokshaHub(moksha_config()) as hub:
        publish: Callable[[str, Any], Awaitable[Any]] = hub.publish

        async def send_all(topic: str, batch: Sequence[dict[str, Any]]) -> None:
            for i in range(0, len(batch), window):
                await asyncio.gather(*(publish(topic, body) for body in batch[i : i + window]))

        await send_all(WARMUP_DESTINATION.removeprefix("/topic/"), bodies[:WARMUP])
        started = time.monotonic()
        await send_all(TOPIC, bodies)
        return started, time.monotonic()


# -- stomp.py ---------------------------------------------------------------


def stomppy_connection(listener: Any) -> Any:
    import stomp

    conn = stomp.Connection12([(HOST, PORT)], vhost="/")  # host:/ -- RabbitMQ's vhost
    conn.set_listener("bench", listener)
    conn.connect("guest", "guest", wait=True)
    return conn


class _Receipts:
    """A stomp.py listener: RECEIPTs set events, MESSAGEs go to ``on_message``."""

    def __init__(self, on_message: Callable[[Any], None] | None = None) -> None:
        self.waiting: dict[str, threading.Event] = {}
        self.on_message = on_message or (lambda frame: None)

    def on_receipt(self, frame: Any) -> None:
        waiting = self.waiting.pop(frame.headers["receipt-id"], None)
        if waiting is not None:  # not the DISCONNECT receipt stomp.py asks for itself
            waiting.set()

    def on_error(self, frame: Any) -> None:
        print(f"stomp.py: broker error {frame.headers}", file=sys.stderr)


def consume_stomppy(n: int, ready: Callable[[], None]) -> Tally:
    done = threading.Event()
    tally = Tally(n, done.set)
    listener = _Receipts(lambda f: tally.work(json.loads(f.body)))
    conn = stomppy_connection(listener)
    confirmed = listener.waiting.setdefault("sub", threading.Event())
    conn.subscribe(DESTINATION, "1", ack="auto", headers={
        **subscribe_headers(QUEUES["stomp.py"]), "receipt": "sub"})  # fmt: skip
    if not confirmed.wait(SETUP_TIMEOUT):
        raise RuntimeError("stomp.py: no receipt for SUBSCRIBE")
    ready()
    if not done.wait(run_timeout(n)):
        raise RuntimeError(f"stomp.py: {tally.distinct} of {n} messages in time")
    conn.disconnect()
    return tally


def publish_stomppy(bodies: Sequence[dict[str, Any]], window: int) -> tuple[float, float]:
    listener = _Receipts()
    conn = stomppy_connection(listener)
    counter = iter(range(1 << 62))

    def send_all(destination: str, batch: Sequence[dict[str, Any]]) -> None:
        for i in range(0, len(batch), window):
            chunk = batch[i : i + window]
            for body in chunk[:-1]:
                conn.send(destination, json.dumps(body), content_type="application/json")
            rid = str(next(counter))
            confirmed = listener.waiting.setdefault(rid, threading.Event())
            conn.send(destination, json.dumps(chunk[-1]), content_type="application/json",
                      headers={"receipt": rid})  # fmt: skip
            if not confirmed.wait(SETUP_TIMEOUT):
                raise RuntimeError("stomp.py: no receipt for a window")

    send_all(WARMUP_DESTINATION, bodies[:WARMUP])
    started = time.monotonic()
    send_all(DESTINATION, bodies)
    finished = time.monotonic()
    conn.disconnect()
    return started, finished


# -- processes and the run ------------------------------------------------------

CONSUMERS: dict[str, Callable[[int, Callable[[], None]], Any]] = {
    "minimal": consume_minimal,
    "moksha": consume_moksha,
    "stomp.py": consume_stomppy,
}
PUBLISHERS: dict[str, Callable[[Sequence[dict[str, Any]], int], Any]] = {
    "minimal": publish_minimal,
    "moksha": publish_moksha,
    "stomp.py": publish_stomppy,
}


def consumer_main(side: str, n: int, pipe: Connection) -> None:
    outcome = CONSUMERS[side](n, lambda: pipe.send("ready"))
    tally = asyncio.run(outcome) if asyncio.iscoroutine(outcome) else outcome
    pipe.send(tally.report())


def publisher_main(side: str, n: int, window: int, pipe: Connection) -> None:
    outcome = PUBLISHERS[side](make_bodies(n), window)
    pipe.send(asyncio.run(outcome) if asyncio.iscoroutine(outcome) else outcome)


async def delete_queue(name: str) -> None:
    connection = await aio_pika.connect(AMQP, timeout=SETUP_TIMEOUT)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)


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


def run_side(side: str, n: int, window: int) -> tuple[float, float]:
    """One run: the consumer is ready, then the publisher starts; returns (end to end, publish)."""
    context = multiprocessing.get_context("spawn")
    queue = QUEUES.get(side) or moksha_queue_name()
    asyncio.run(delete_queue(queue))
    consumer_pipe, child = context.Pipe()
    consumer = context.Process(target=consumer_main, args=(side, n, child))
    publisher_pipe, child = context.Pipe()
    publisher = context.Process(target=publisher_main, args=(side, n, window, child))
    limit = SETUP_TIMEOUT + run_timeout(n)
    try:
        consumer.start()
        if _receive(consumer_pipe, SETUP_TIMEOUT, f"{side} consumer start") != "ready":
            raise RuntimeError(f"{side} consumer: unexpected message")
        publisher.start()
        started, published = _receive(publisher_pipe, limit, f"{side} publisher")
        finished, distinct, duplicates, total = _receive(consumer_pipe, limit, f"{side} consumer")
    finally:
        _stop(publisher)
        _stop(consumer)
        asyncio.run(delete_queue(queue))
    if distinct != n or duplicates or total != n * (n - 1) // 2:
        raise RuntimeError(f"{side}: {distinct} of {n} arrived, {duplicates} twice, or not those")
    return n / (finished - started), n / (published - started)


LABELS = {"minimal": "minimal asyncio client", "moksha": "Moksha (MokshaHub -> Central)",
          "stomp.py": "stomp.py (threads)"}  # fmt: skip
TARGETS = {"stomp.py": 1.0}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (median)")
    parser.add_argument("--window", type=int, default=100, help="messages per receipt")
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated")
    args = parser.parse_args(argv)
    wanted = [side.strip() for side in args.sides.split(",") if side.strip()]
    if args.messages < 1 or args.repeat < 1 or args.window < 1:
        parser.error("--messages, --repeat and --window must be at least 1")
    if not wanted or any(side not in SIDES for side in wanted):
        parser.error(f"--sides takes names among {', '.join(SIDES)}")
    sides = []
    for side in wanted:
        if side == "stomp.py" and importlib.util.find_spec("stomp") is None:
            print("stomp.py: not installed, left out (pip install -e '.[bench]')")
            continue
        sides.append(side)
    size = statistics.mean(len(json.dumps(body)) for body in make_bodies(args.messages))
    peer = f", stomp.py {metadata.version('stomp.py')}" if "stomp.py" in sides else ""
    print(f"python {platform.python_version()}{peer}; RabbitMQ STOMP on {HOST}:{PORT}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; messages: {args.messages} "
        f"(body {size:.0f} bytes), receipt every {args.window}, repeat: {args.repeat} (median)"
    )
    began = time.perf_counter()
    runs: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
    for r in range(args.repeat):
        # Rotate which goes first, so drift on a noisy machine hits every side alike.
        for side in sides[r % len(sides) :] + sides[: r % len(sides)]:
            runs[side].append(run_side(side, args.messages, args.window))
    medians = {side: statistics.median(rate for rate, _ in runs[side]) for side in sides}
    print("\nend to end (first publish to N-th consumed)")
    print(f"{'side':<30} {'msgs/s (median)':>16} {'publish msgs/s':>15}   runs")
    for side in sides:
        publishing = statistics.median(p for _, p in runs[side])
        every = ", ".join(f"{rate:,.0f}" for rate, _ in runs[side])
        print(f"{LABELS[side]:<30} {medians[side]:>16,.0f} {publishing:>15,.0f}   {every}")
    for side in sides:
        if side == "moksha" or "moksha" not in medians:
            continue
        ratio = medians["moksha"] / medians[side]
        target = TARGETS.get(side)
        verdict = ""
        if target is not None:
            verdict = f" (target >= {target}: {'PASS' if ratio >= target else 'MISS'})"
        print(f"ratio Moksha / {LABELS[side]}: {ratio:.2f}{verdict}")
    print(f"\ntotal time {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
