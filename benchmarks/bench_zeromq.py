"""ZeroMQ receive throughput, body decoded, a consumer on both sides: Moksha against pyzmq.

A publisher process sends ``--messages`` distinct messages in the original
Moksha wire format (``[topic, ~200-byte JSON body]``, what Moksha sends by
default) as fast as it can, from a raw pyzmq XPUB socket with ``XPUB_NODROP``
(it waits instead of dropping when the receiver falls behind, so every message
arrives and the receiver sets the pace).  Two receivers, each in its own
process, do the same work per message -- decode the JSON body and hand it to a
consumer that counts its sequence number once -- and are timed from the first
message consumed to the N-th:

* the *baseline*: a plain blocking ``recv_multipart()`` loop on a pyzmq SUB
  socket, ``json.loads`` of the body, then ``consume(body)``;
* *Moksha*: a ``CentralMokshaHub`` on the ZeroMQ backend (default settings,
  subscribed to the publisher) running one ``Consumer`` whose ``async def
  consume(message)`` reads ``message.body``.

Each run checks that every message arrived, once.  Prints the median rate of
each over ``--repeat`` runs and their ratio (Moksha / pyzmq, target >= 0.8).
Run from the repository root::

    python benchmarks/bench_zeromq.py [--messages N] [--repeat R]
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
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import zmq

from moksha.config import load_config
from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer
from moksha.hub.backends.zeromq_wire import encode_frames
from moksha.message import Message

TOPIC = "bench.zeromq.event"
TIMEOUT = 30.0  # per run; a hang fails instead of spinning


def make_frames(n: int) -> list[list[bytes]]:
    """``n`` distinct messages, each the original's ``[topic, ~200-byte JSON body]``."""
    text = "lorem ipsum dolor sit amet, consectetur adipiscing elit " * 2
    bodies = [
        {"seq": i, "user": f"user{i % 97}", "kind": "bench.sample", "ok": True,
         "value": i * 0.5, "text": text[:122]}
        for i in range(n)
    ]  # fmt: skip
    return [encode_frames(Message(TOPIC, body)) for body in bodies]


def publisher(n: int, pipe: Connection) -> None:
    """Bind, tell the parent the endpoint, wait for one subscriber, send ``n`` messages."""
    frames = make_frames(n)
    context = zmq.Context()
    pub = context.socket(zmq.XPUB)
    pub.setsockopt(zmq.XPUB_NODROP, 1)
    pub.setsockopt(zmq.LINGER, 5000)  # let the tail reach the receiver after we return
    pub.bind("tcp://127.0.0.1:*")
    pipe.send(pub.getsockopt_string(zmq.LAST_ENDPOINT))
    if not pub.poll(TIMEOUT * 1000):
        raise SystemExit("publisher: no subscriber came")
    pub.recv()  # the subscription: the receiver is connected
    for message in frames:
        pub.send_multipart(message)
    pipe.recv()  # the parent says the receiver has everything
    pub.close()
    context.term()


class Tally:
    """The consumer's work on both sides: count each ``seq`` once, time the first and N-th."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = bytearray(n)
        self.distinct = self.duplicates = self.total = 0
        self.first = self.last = 0.0

    def work(self, body: dict[str, Any]) -> bool:
        """Count ``body``; True once all ``n`` arrived."""
        seq = body["seq"]
        if self.seen[seq]:
            self.duplicates += 1
            return False
        self.seen[seq] = 1
        self.total += seq
        self.distinct += 1
        if self.distinct == 1:
            self.first = time.perf_counter()
        if self.distinct == self.n:
            self.last = time.perf_counter()
            return True
        return False

    def rate(self) -> float:
        n = self.n
        if self.distinct != n or self.duplicates or self.total != n * (n - 1) // 2:
            raise RuntimeError(f"{self.distinct} of {n} arrived, {self.duplicates} twice")
        return (n - 1) / (self.last - self.first)


def baseline_receiver(endpoint: str, n: int, pipe: Connection) -> None:
    """A plain blocking SUB loop: decode each body, hand it to the consumer; send the rate."""
    tally = Tally(n)
    consume = tally.work
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVTIMEO, int(TIMEOUT * 1000))
    sub.connect(endpoint)
    sub.subscribe(TOPIC.encode())
    while not consume(json.loads(sub.recv_multipart()[1])):
        pass
    pipe.send(tally.rate())
    sub.close(linger=0)
    context.term()


def moksha_receiver(endpoint: str, n: int, pipe: Connection) -> None:
    """A CentralMokshaHub running one consumer on the ZeroMQ backend; send the rate."""

    async def run() -> float:
        tally = Tally(n)
        done = asyncio.Event()

        class ZeroMQBenchConsumer(Consumer):
            topic = TOPIC

            async def consume(self, message: Message) -> None:
                if tally.work(message.body):
                    done.set()

        config = {"moksha.backends": "zeromq", "zmq_enabled": True,
                  "zmq_subscribe_endpoints": endpoint}  # fmt: skip
        hub_config = load_config(overrides=config, environ={}, search=False)
        async with CentralMokshaHub(hub_config, consumers=[ZeroMQBenchConsumer], producers=[]):
            async with asyncio.timeout(TIMEOUT):
                await done.wait()
        return tally.rate()

    pipe.send(asyncio.run(run()))


RECEIVERS = {"pyzmq": baseline_receiver, "moksha": moksha_receiver}


def run_side(side: str, n: int) -> float:
    """Messages/s of one receiver, in its own process, fed by a fresh publisher process."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=publisher, args=(n, child), daemon=True)
    process.start()
    if not parent.poll(TIMEOUT):
        raise RuntimeError("the publisher did not start")
    endpoint = parent.recv()
    results, out = multiprocessing.Pipe()
    receiver = multiprocessing.Process(target=RECEIVERS[side], args=(endpoint, n, out))
    receiver.start()
    if not results.poll(TIMEOUT * 2):
        raise RuntimeError(f"the {side} receiver did not finish")
    rate: float = results.recv()
    receiver.join(TIMEOUT)
    parent.send("done")
    process.join(TIMEOUT)
    if process.exitcode != 0:
        raise RuntimeError(f"the publisher failed (exit code {process.exitcode})")
    return rate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    args = parser.parse_args(argv)
    if args.messages < 2 or args.repeat < 1:
        parser.error("--messages must be at least 2 and --repeat at least 1")
    size = statistics.mean(len(frames[1]) for frames in make_frames(args.messages))
    print(
        f"python {platform.python_version()}, pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; messages: {args.messages} "
        f"(body {size:.0f} bytes on average), repeat: {args.repeat} (median)"
    )
    began = time.perf_counter()
    rates: dict[str, list[float]] = {side: [] for side in RECEIVERS}
    sides = list(RECEIVERS)
    for r in range(args.repeat):
        # Alternate which goes first, so drift on a noisy machine hits both alike.
        for side in sides if r % 2 == 0 else sides[::-1]:
            rates[side].append(run_side(side, args.messages))
    base, ours = statistics.median(rates["pyzmq"]), statistics.median(rates["moksha"])
    print(f"\n{'receiver (body decoded, consumer)':<40} {'msgs/s (median)':>16}   runs")
    print(f"{'pyzmq blocking SUB loop':<40} {base:>16,.0f}   {_runs(rates['pyzmq'])}")
    print(f"{'Moksha: CentralMokshaHub -> Consumer':<40} {ours:>16,.0f}   {_runs(rates['moksha'])}")
    verdict = "PASS" if ours / base >= 0.8 else "MISS"
    print(f"ratio Moksha / pyzmq: {ours / base:.2f} (target >= 0.8: {verdict})")
    print(f"\ntotal time {time.perf_counter() - began:.1f} s")
    return 0


def _runs(rates: list[float]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in rates)


if __name__ == "__main__":
    sys.exit(main())
