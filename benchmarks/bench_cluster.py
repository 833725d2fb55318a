"""Several ``moksha start`` nodes as one cluster vs one node, measured in the same run.

Two cases, each first on 1 node then on 2 nodes of one cluster (RabbitMQ carries the
messages, Redis keeps history and ids), the nodes as separate processes:

* throughput: ``--clients`` WebSocket clients subscribed to ``bench.#``, spread
  evenly over the nodes; a plain aio-pika publisher (its own process) sends
  ``--messages`` messages as fast as RabbitMQ takes them.  Reported: deliveries/s
  (frames received by all clients / time from first to last), and the nodes' CPU
  seconds per 1000 deliveries (from /proc, user + system);
* latency: one client; ``--rate`` messages/s published over HTTP on node A, the
  client on node A (1 node) or node B (2 nodes).  Reported: p50/p99 from the
  publish to the frame's arrival.

Ratios printed: 2 nodes / 1 node.  Run (real-time priority keeps the neighbours' noise out)::

    chrt -f 10 .venv/bin/python benchmarks/bench_cluster.py

Needs RabbitMQ (5672, guest) and Redis (6379) on this machine; it uses an exchange
and a Redis key prefix of its own and deletes them at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aio_pika
import httpx
import redis.asyncio as redis
import websockets

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = "redis://127.0.0.1:6379/0"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


class Nodes:
    """``count`` moksha start processes of one fresh cluster."""

    def __init__(self, count: int, folder: Path) -> None:
        self.name = f"bench_{secrets.token_hex(4)}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        settings = {
            "moksha.backends": "amqp",
            "amqp_broker": AMQP_URL,
            "amqp_exchange": self.name,
            "moksha.cluster.url": REDIS_URL,
            "moksha.cluster.prefix": self.name,
            "moksha.dashboard.demo": "false",
            "moksha.livesocket.queue_size": "100000",
        }
        for _ in range(count):
            port = free_port()
            where = folder / f"{self.name}-{port}"
            where.mkdir()
            ini = "".join(f"{k} = {v}\n" for k, v in settings.items())
            (where / "development.ini").write_text("[app:main]\n" + ini)
            env = {k: v for k, v in os.environ.items() if not k.startswith("MOKSHA_")}
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "moksha", "start", "-q", "--port", str(port)],
                    cwd=where,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            self.urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        for url in self.urls:
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            else:
                raise SystemExit(f"a node did not start: {url}")

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes)

    async def close(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        async with redis.from_url(REDIS_URL) as store:
            keys = [key async for key in store.scan_iter(f"{self.name}:*")]
            if keys:
                await store.delete(*keys)
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            await channel.exchange_delete(self.name)


async def subscribed_clients(urls: list[str], count: int) -> list[websockets.ClientConnection]:
    clients = []
    for n in range(count):
        url = urls[n % len(urls)].replace("http://", "ws://") + "/livesocket/ws"
        ws = await websockets.connect(url, max_queue=None)
        await ws.send(json.dumps({"topic": "__topic_subscribe__", "body": "bench.#"}))
        clients.append(ws)
    # Subscribed once every node counts its share (a bounded poll).
    async with httpx.AsyncClient() as http, asyncio.timeout(30):
        for i, url in enumerate(urls):
            share = len(range(i, count, len(urls)))
            while (await http.get(f"{url}/livesocket/status")).json()["subscriptions"] < share:
                await asyncio.sleep(0.05)
    return clients


def publisher(exchange: str, messages: int) -> None:
    """The publishing process: ``messages`` messages, unconfirmed, as fast as it can."""

    async def run() -> None:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel(publisher_confirms=False)
            target = await channel.get_exchange(exchange)
            body = json.dumps({"pad": "x" * 150}).encode()
            for n in range(messages):
                await target.publish(
                    aio_pika.Message(body, content_type="application/json", message_id=f"m{n}"),
                    routing_key="bench.load",
                    mandatory=False,
                )

    asyncio.run(run())


async def throughput(nodes: Nodes, clients: int, messages: int) -> tuple[float, float]:
    """(deliveries/s, node CPU seconds per 1000 deliveries)."""
    sockets = await subscribed_clients(nodes.urls, clients)
    expected = messages
    counts = [0] * len(sockets)
    first: list[float] = []
    last = [0.0]

    async def drain(i: int, ws: websockets.ClientConnection) -> None:
        async with asyncio.timeout(120):
            while counts[i] < expected:
                await ws.recv()
                if not first:
                    first.append(time.perf_counter())
                counts[i] += 1
                last[0] = time.perf_counter()

    cpu_before = nodes.cpu()
    sender = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--publish", nodes.name, str(messages)
    )
    with contextlib.suppress(TimeoutError):  # count what came
        await asyncio.gather(*(drain(i, ws) for i, ws in enumerate(sockets)))
    await sender.wait()
    cpu = nodes.cpu() - cpu_before
    for ws in sockets:
        await ws.close()
    delivered = sum(counts)
    seconds = max(last[0] - first[0], 1e-9) if first else float("inf")
    return delivered / seconds, 1000 * cpu / max(delivered, 1)


async def latency(publish_url: str, receive_url: str, rate: float, count: int) -> list[float]:
    """Milliseconds from an HTTP publish on one node to the frame on a client of another."""
    [ws] = await subscribed_clients([receive_url], 1)
    delays: list[float] = []
    async with httpx.AsyncClient(base_url=publish_url) as http:

        async def receive() -> None:
            async with asyncio.timeout(60):
                while len(delays) < count:
                    frame = json.loads(await ws.recv())
                    delays.append(1000 * (time.time() - frame["body"]["sent"]))

        receiving = asyncio.create_task(receive())
        for _ in range(count):
            await http.post(
                "/livesocket/publish", json={"topic": "bench.lat", "body": {"sent": time.time()}}
            )
            await asyncio.sleep(1 / rate)
        await receiving
    await ws.close()
    return delays


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(args: argparse.Namespace) -> None:
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for count in (1, 2):
            nodes = Nodes(count, Path(folder))
            try:
                rates, cpus = [], []
                for _ in range(args.repeats):
                    rate, cpu = await throughput(nodes, args.clients, args.messages)
                    rates.append(rate)
                    cpus.append(cpu)
                receive_on = nodes.urls[-1]  # node B when there are two
                delays = await latency(nodes.urls[0], receive_on, args.rate, args.latency_count)
            finally:
                await nodes.close()
            results[count] = (
                statistics.median(rates),
                statistics.median(cpus),
                quantile(delays, 0.5),
                quantile(delays, 0.99),
            )
            rate, cpu, p50, p99 = results[count]
            print(
                f"{count} node(s): {rate:,.0f} deliveries/s (median of {args.repeats}; "
                f"{args.clients} clients, {args.messages} messages), "
                f"{cpu:.3f} node CPU s per 1000 deliveries; "
                f"publish on A -> client on {'B' if count == 2 else 'A'}: "
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms ({args.rate:g} msg/s)",
                flush=True,
            )
    one, two = results[1], results[2]
    print(
        f"ratio 2 nodes / 1 node: deliveries/s {two[0] / one[0]:.2f}x, "
        f"CPU per delivery {two[1] / one[1]:.2f}x, p50 {two[2] / one[2]:.2f}x, "
        f"p99 {two[3] / one[3]:.2f}x"
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--publish":
        publisher(sys.argv[2], int(sys.argv[3]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--latency-count", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
