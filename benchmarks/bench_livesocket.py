"""Live-socket fan-out to many WebSocket clients: Moksha against ``websockets.broadcast()``.

The server process runs two servers on 127.0.0.1 side by side, in one event
loop:

* the *baseline*: a plain ``websockets`` server (the new asyncio API) that adds
  each connection to a set once it has sent its subscribe frame, and publishes
  with ``websockets.asyncio.server.broadcast(subscribers, frame)``;
* *Moksha*: a ``CentralMokshaHub`` (memory bus) serving its live socket
  (``moksha.livesocket.backend = websocket``, port 0), defaults otherwise;
  messages are published with ``await hub.publish(topic, body)``.

``--clients`` WebSocket clients (the ``websockets`` library) connect to each
server, from ``--procs`` separate processes, and subscribe to the same topic
with Moksha's frame ``{"topic": "__topic_subscribe__", "body": TOPIC}``.
Bodies are ~200 bytes of JSON holding the run, a sequence number and the
publish time (``time.monotonic()``: CLOCK_MONOTONIC, the same clock in every
process); each client decodes every frame, counts it once per sequence number
and records its latency.  Each run checks that every client got every message
once.  Two modes, as in FIELD-NOTES:

* *saturated*: ``--messages`` published as fast as the server takes them;
  deliveries/s = messages x clients / (last delivery - first publish);
* *paced*: ``--paced`` messages at ``--rate`` per second; latency p50/p99.

Each figure is the median of ``--repeat`` runs; the two sides alternate which
goes first.  Run from the repository root::

    python benchmarks/bench_livesocket.py [--clients 1000] [--procs 2] [--repeat R]
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from moksha.config import load_config
from moksha.hub import CentralMokshaHub

TOPIC = "bench.livesocket.event"
SUBSCRIBE = json.dumps({"topic": "__topic_subscribe__", "body": TOPIC})
PAD = (
    "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua. ut enim ad minim"
)
SIDES = ("websockets", "moksha")
LABELS = {"websockets": "websockets broadcast()", "moksha": "Moksha live socket"}
QUEUE_SIZE = 1000  # Moksha's default moksha.livesocket.queue_size: a burst beyond it conflates
SETUP_TIMEOUT = 60.0  # connecting and subscribing every client
RUN_TIMEOUT = 30.0  # beyond the publishing itself; a hang fails instead of spinning
IDLE_TIMEOUT = 300.0  # a client process waiting for its next command
CONNECT_BATCH = 100  # connections opened at once: inside the listen backlog (128)
POLL = 0.02  # seconds between looks at a server's subscriber count


def raise_fd_limit(needed: int) -> None:
    """Raise the soft open-files limit to ``needed`` if it is lower; exit when it cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(
            f"this needs {needed} open files in one process but the hard limit (ulimit -Hn) is "
            f"{hard}: raise it, or use fewer --clients"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def make_body(run: int, of: int, seq: int) -> dict[str, Any]:
    """One ~200-byte JSON body, stamped with the time it is made (just before publishing)."""
    return {"run": run, "of": of, "seq": seq, "t": time.monotonic(), "text": PAD}


def receive(pipe: Connection, timeout: float) -> Any:
    """The next object on ``pipe``, or None after ``timeout`` seconds."""
    return pipe.recv() if pipe.poll(timeout) else None


# -- the client processes ------------------------------------------------------


class RunTally:
    """What one client process received in one run, over its connections to one side.

    Args:
        of: messages in the run.
        connections: this process's connections to the side that publishes the run.
    """

    def __init__(self, of: int, connections: int) -> None:
        self.of = of
        self.connections = connections
        self.seen = [bytearray(of) for _ in range(connections)]
        self.counts = [0] * connections
        self.complete = 0
        self.deliveries = 0
        self.duplicates = 0
        self.last = 0.0
        self.latencies = array.array("d")
        self.done = asyncio.Event()
        self.cpu = time.process_time()  # this process's CPU time, from the run's start

    def record(self, connection: int, seq: int, sent: float, now: float) -> None:
        flags = self.seen[connection]
        if flags[seq]:
            self.duplicates += 1
            return
        flags[seq] = 1
        self.deliveries += 1
        self.last = now
        self.latencies.append(now - sent)
        self.counts[connection] += 1
        if self.counts[connection] == self.of:
            self.complete += 1
            if self.complete == self.connections:
                self.done.set()

    def report(self) -> tuple[int, int, float, bytes, float]:
        cpu = time.process_time() - self.cpu
        return self.deliveries, self.duplicates, self.last, self.latencies.tobytes(), cpu


async def open_client(url: str, compression: str | None) -> ClientConnection:
    client = await connect(url, compression=compression, proxy=None, open_timeout=SETUP_TIMEOUT)
    await client.send(SUBSCRIBE)
    return client


async def run_clients(
    urls: Sequence[str], count: int, compression: str | None, pipe: Connection
) -> None:
    """``count`` clients per URL; report each run the parent announces, until told to stop."""
    tallies: dict[int, RunTally] = {}

    async def read(client: ClientConnection, index: int) -> None:
        loads, monotonic = json.loads, time.monotonic
        try:
            async for frame in client:
                now = monotonic()
                body = loads(frame)["body"]
                run = body["run"]
                tally = tallies.get(run) or tallies.setdefault(run, RunTally(body["of"], count))
                tally.record(index, body["seq"], body["t"], now)
        except ConnectionClosed:
            pass

    clients: list[ClientConnection] = []
    async with asyncio.timeout(SETUP_TIMEOUT):
        for url in urls:
            for start in range(0, count, CONNECT_BATCH):
                batch = min(CONNECT_BATCH, count - start)
                clients += await asyncio.gather(
                    *(open_client(url, compression) for _ in range(batch))
                )
    readers = [asyncio.create_task(read(c, i % count)) for i, c in enumerate(clients)]
    pipe.send("connected")
    try:
        while (command := await asyncio.to_thread(receive, pipe, IDLE_TIMEOUT)) is not None:
            if command[0] != "run":
                break
            _, run, of, timeout = command
            tally = tallies.setdefault(run, RunTally(of, count))
            try:
                async with asyncio.timeout(timeout):
                    await tally.done.wait()
            except TimeoutError:
                pass  # the parent sees what is missing
            pipe.send(tally.report())
            del tallies[run]
    finally:
        async with asyncio.timeout(RUN_TIMEOUT):
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


def client_main(urls: list[str], count: int, compression: str | None, pipe: Connection) -> None:
    """A client process: ``count`` connections to each URL."""
    raise_fd_limit(len(urls) * count + 100)
    asyncio.run(run_clients(urls, count, compression, pipe))


# -- the server process ------------------------------------------------------------


@dataclass
class Run:
    rate: float  # deliveries/s, first publish to the last delivery
    p50: float  # seconds, publish to client
    p99: float
    server_cpu: float  # CPU seconds per delivery: the server process
    client_cpu: float  # CPU seconds per delivery: the client processes together


Publisher = Callable[[int, int], Awaitable[None]]


class Servers:
    """The two servers, their publishers, and the client processes' pipes."""

    def __init__(self, hub: CentralMokshaHub, pipes: list[Connection], clients: int) -> None:
        self.hub = hub
        self.pipes = pipes
        self.clients = clients
        self.subscribers: set[ServerConnection] = set()
        self.publishers: dict[str, Publisher] = {
            "websockets": self._broadcast,
            "moksha": self._hub_publish,
        }
        self._next_run = 0
        self._of = 0  # messages in the current run

    async def handle(self, connection: ServerConnection) -> None:
        """The baseline's whole protocol: one subscribe frame, then only frames out."""
        try:
            if await connection.recv() == SUBSCRIBE:
                self.subscribers.add(connection)
            await connection.wait_closed()
        finally:
            self.subscribers.discard(connection)

    async def _broadcast(self, run: int, seq: int) -> None:
        event = {"topic": TOPIC, "body": make_body(run, self._of, seq), "id": f"{run}-{seq}"}
        broadcast(self.subscribers, json.dumps(event, separators=(",", ":")))

    async def _hub_publish(self, run: int, seq: int) -> None:
        await self.hub.publish(TOPIC, make_body(run, self._of, seq))

    async def wait_subscribed(self) -> None:
        """Until both servers count every client as subscribed (bounded)."""
        live = self.hub.livesocket
        assert live is not None
        async with asyncio.timeout(SETUP_TIMEOUT):
            while (
                len(self.subscribers) < self.clients or live.stats()["subscriptions"] < self.clients
            ):
                await asyncio.sleep(POLL)

    async def measure(self, side: str, of: int, rate: float | None) -> Run:
        """One run: ``of`` messages on ``side``, as fast as possible or at ``rate`` per second."""
        run, self._next_run, self._of = self._next_run, self._next_run + 1, of
        timeout = RUN_TIMEOUT + (of / rate if rate else 0.0)
        for pipe in self.pipes:
            pipe.send(("run", run, of, timeout))
        publish = self.publishers[side]
        loop = asyncio.get_running_loop()
        cpu = time.process_time()
        started = time.monotonic()
        began = loop.time()
        for seq in range(of):
            if rate:  # pacing, not synchronisation: the next publish is due then
                await asyncio.sleep(began + seq / rate - loop.time())
            await publish(run, seq)
        reports = [await asyncio.to_thread(receive, p, timeout + RUN_TIMEOUT) for p in self.pipes]
        cpu = time.process_time() - cpu
        if any(report is None for report in reports):
            raise RuntimeError(f"{side}: a client process did not report run {run}")
        deliveries = sum(report[0] for report in reports)
        duplicates = sum(report[1] for report in reports)
        expected = of * self.clients
        if deliveries != expected or duplicates:
            raise RuntimeError(
                f"{side}, run {run}: {deliveries} of {expected} deliveries arrived, "
                f"{duplicates} twice"
            )
        latencies = array.array("d")
        for report in reports:
            latencies.frombytes(report[3])
        ordered = sorted(latencies)
        last = max(report[2] for report in reports)
        return Run(
            deliveries / (last - started),
            ordered[len(ordered) // 2],
            ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)],
            cpu / deliveries,
            sum(report[4] for report in reports) / deliveries,
        )


async def measure_all(args: argparse.Namespace) -> dict[tuple[str, str], list[Run]]:
    """Start both servers and the client processes; run every measurement."""
    config = load_config(
        overrides={
            "moksha.backends": "memory",
            "moksha.livesocket.backend": "websocket",
            "moksha.livesocket.websocket.port": 0,
        },
        environ={},
        search=False,
    )
    context = multiprocessing.get_context("spawn")
    per_process = args.clients // args.procs
    async with CentralMokshaHub(config, consumers=[], producers=[]) as hub:
        assert hub.livesocket_url is not None
        pipes: list[Connection] = []
        processes: list[multiprocessing.process.BaseProcess] = []
        servers = Servers(hub, pipes, args.clients)
        async with serve(servers.handle, "127.0.0.1", 0, compression=args.compression) as server:
            port = server.sockets[0].getsockname()[1]
            urls = [f"ws://127.0.0.1:{port}/", hub.livesocket_url.replace("http", "ws", 1) + "/"]
            try:
                for _ in range(args.procs):
                    pipe, child = context.Pipe()
                    process = context.Process(
                        target=client_main, args=(urls, per_process, args.compression, child)
                    )
                    process.start()
                    pipes.append(pipe)
                    processes.append(process)
                for pipe in pipes:
                    if await asyncio.to_thread(receive, pipe, SETUP_TIMEOUT) != "connected":
                        raise RuntimeError("a client process did not connect its clients")
                await servers.wait_subscribed()
                for side in SIDES:  # warm-up, not measured: every path, every connection
                    await servers.measure(side, 10, None)
                runs: dict[tuple[str, str], list[Run]] = {}
                for r in range(args.repeat):
                    # Alternate which goes first, so drift on a noisy machine hits both alike.
                    for side in SIDES if r % 2 == 0 else SIDES[::-1]:
                        saturated = await servers.measure(side, args.messages, None)
                        paced = await servers.measure(side, args.paced, args.rate)
                        runs.setdefault(("saturated", side), []).append(saturated)
                        runs.setdefault(("paced", side), []).append(paced)
                return runs
            finally:
                for pipe in pipes:
                    with contextlib.suppress(OSError):  # that process is gone already
                        pipe.send(("stop",))
                for process in processes:
                    await asyncio.to_thread(process.join, RUN_TIMEOUT)
                    if process.is_alive():
                        process.terminate()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def report(runs: dict[tuple[str, str], list[Run]], args: argparse.Namespace) -> None:
    """Print both modes' tables and ratios."""
    fields = ("rate", "p50", "p99", "server_cpu", "client_cpu")
    med = {
        key: Run(*(statistics.median(getattr(run, name) for run in rs) for name in fields))
        for key, rs in runs.items()
    }
    modes = {
        "saturated": f"{args.messages} messages as fast as possible, publish to last delivery",
        "paced": f"{args.paced} messages at {args.rate:g}/s, latency publish -> client",
    }
    for mode, how in modes.items():
        print(f"\n{mode} ({how})")
        print(
            f"{'side':<24} {'deliveries/s':>13} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'CPU us/delivery: server':>24} {'clients':>8}   runs (deliveries/s / p99 ms)"
        )
        for side in SIDES:
            m = med[mode, side]
            every = ", ".join(f"{r.rate:,.0f} / {_ms(r.p99)}" for r in runs[mode, side])
            print(
                f"{LABELS[side]:<24} {m.rate:>13,.0f} {_ms(m.p50):>8} {_ms(m.p99):>8} "
                f"{m.server_cpu * 1e6:>24.2f} {m.client_cpu * 1e6:>8.2f}   {every}"
            )
        ours, base = med[mode, "moksha"], med[mode, "websockets"]
        print(
            f"ratio Moksha / websockets: deliveries/s {ours.rate / base.rate:.2f}, "
            f"p99 {ours.p99 / base.p99:.2f}x, server CPU per delivery "
            f"{ours.server_cpu / base.server_cpu:.2f}x"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000, help="clients per side")
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--messages", type=int, default=200, help="messages per saturated run")
    parser.add_argument("--paced", type=int, default=40, help="messages per paced run")
    parser.add_argument("--rate", type=float, default=20.0, help="paced messages per second")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument(
        "--compression",
        choices=("none", "deflate"),
        default="none",
        help="permessage-deflate, negotiated by the clients (browsers offer it)",
    )
    args = parser.parse_args(argv)
    args.compression = None if args.compression == "none" else args.compression
    if args.clients < 1 or args.procs < 1 or args.clients % args.procs:
        parser.error("--clients must be a positive multiple of --procs")
    if not 1 <= args.messages <= QUEUE_SIZE or args.paced < 1 or args.rate <= 0:
        parser.error(f"--messages must be 1 to {QUEUE_SIZE} (a larger burst conflates)")
    raise_fd_limit(2 * args.clients + 200)
    print(
        f"python {platform.python_version()}, websockets {metadata.version('websockets')}, "
        f"uvicorn {metadata.version('uvicorn')}, loop: asyncio (default selector loop)"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; clients: {args.clients} per side "
        f"in {args.procs} processes, compression: {args.compression or 'none'}, "
        f"open files: {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}, "
        f"repeat: {args.repeat} (median)"
    )
    began = time.perf_counter()
    runs = asyncio.run(measure_all(args))
    report(runs, args)
    print(f"\ntotal time {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
