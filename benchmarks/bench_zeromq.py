"""ZeroMQ receive throughput: the ZeroMQ backend against a plain pyzmq SUB loop.

A publisher process sends ``--messages`` distinct messages in Moksha's wire
format (``[topic, ~200-byte JSON body, meta]``) as fast as it can, from a
raw pyzmq XPUB socket with ``XPUB_NODROP`` (it waits instead of dropping when
the receiver falls behind, so every message arrives and the receiver sets the
pace).  Two receivers are timed from the first message to the last:

* the *baseline*: a plain blocking ``recv_multipart()`` loop on a SUB socket,
  in its own process (FIELD-NOTES: ~136k msgs/s on this kind of machine);
* the *backend*: :class:`moksha.hub.backends.zeromq.ZeroMQBackend` subscribed
  to the topic, with an ``async def`` handler that counts messages (it does
  not read the body, which stays undecoded).

Prints the median rate of each over ``--repeat`` runs and their ratio
(backend / baseline).  Run from the repository root::

    python benchmarks/bench_zeromq.py [--messages N] [--repeat R]
"""

from __future__ import annotations

import argparse
import asyncio
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
from moksha.hub.backends.zeromq import ZeroMQBackend
from moksha.hub.backends.zeromq_wire import encode_frames
from moksha.message import Message

TOPIC = "bench.zeromq.event"
TIMEOUT = 30.0  # per run; a hang fails instead of spinning


def make_frames(n: int) -> list[list[bytes]]:
    """``n`` distinct messages, each ``[topic, ~200-byte JSON body, meta]``."""
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


def baseline_receiver(endpoint: str, n: int, pipe: Connection) -> None:
    """A plain blocking SUB loop; sends the rate back."""
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVTIMEO, int(TIMEOUT * 1000))
    sub.connect(endpoint)
    sub.subscribe(TOPIC.encode())
    sub.recv_multipart()
    first = time.perf_counter()
    for _ in range(n - 1):
        sub.recv_multipart()
    pipe.send((n - 1) / (time.perf_counter() - first))
    sub.close(linger=0)
    context.term()


def _start_publisher(n: int) -> tuple[multiprocessing.Process, Connection, str]:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=publisher, args=(n, child), daemon=True)
    process.start()
    if not parent.poll(TIMEOUT):
        raise RuntimeError("the publisher did not start")
    return process, parent, parent.recv()


def _finish(process: multiprocessing.Process, pipe: Connection) -> None:
    pipe.send("done")
    process.join(TIMEOUT)
    if process.exitcode != 0:
        raise RuntimeError(f"the publisher failed (exit code {process.exitcode})")


def run_baseline(n: int) -> float:
    """Messages/s of a blocking pyzmq SUB loop in its own process."""
    process, pipe, endpoint = _start_publisher(n)
    parent, child = multiprocessing.Pipe()
    receiver = multiprocessing.Process(target=baseline_receiver, args=(endpoint, n, child))
    receiver.start()
    if not parent.poll(TIMEOUT):
        raise RuntimeError("the baseline receiver did not finish")
    rate: float = parent.recv()
    receiver.join(TIMEOUT)
    _finish(process, pipe)
    return rate


async def run_backend(n: int) -> float:
    """Messages/s of the ZeroMQ backend delivering to a counting handler."""
    process, pipe, endpoint = _start_publisher(n)
    done = asyncio.Event()
    count = 0
    first = last = 0.0

    async def handler(message: Message) -> None:
        nonlocal count, first, last
        count += 1
        if count == 1:
            first = time.perf_counter()
        elif count == n:
            last = time.perf_counter()
            done.set()

    config = load_config(
        overrides={"zmq_enabled": True, "zmq_subscribe_endpoints": endpoint},
        environ={},
        search=False,
    )
    async with ZeroMQBackend(config) as backend:
        await backend.subscribe([TOPIC], handler)
        async with asyncio.timeout(TIMEOUT):
            await done.wait()
    _finish(process, pipe)
    return (n - 1) / (last - first)


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
    baseline: list[float] = []
    backend: list[float] = []
    for r in range(args.repeat):
        # Alternate which goes first, so drift on a noisy machine hits both alike.
        runs: list[tuple[list[float], Any]] = [
            (baseline, lambda: run_baseline(args.messages)),
            (backend, lambda: asyncio.run(run_backend(args.messages))),
        ]
        for rates, run in runs if r % 2 == 0 else runs[::-1]:
            rates.append(run())
    base, ours = statistics.median(baseline), statistics.median(backend)
    print(f"\n{'receiver':<34} {'msgs/s (median)':>16}   runs")
    print(f"{'pyzmq blocking SUB loop':<34} {base:>16,.0f}   {_runs(baseline)}")
    print(f"{'ZeroMQBackend -> async handler':<34} {ours:>16,.0f}   {_runs(backend)}")
    print(f"ratio backend / baseline: {ours / base:.2f}")
    print(f"\ntotal time {time.perf_counter() - began:.1f} s")
    return 0


def _runs(rates: list[float]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in rates)


if __name__ == "__main__":
    sys.exit(main())
