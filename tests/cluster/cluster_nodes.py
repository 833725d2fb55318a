"""Real ``moksha start`` nodes of one cluster, each its own process, for the cluster tests.

Every cluster gets names of its own on the shared services: its own AMQP
exchange (deleted afterwards), its own Redis key prefix (emptied afterwards).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
import redis.asyncio
import websockets

from support import RUN_QUEUE_PREFIX, TIMEOUT, require_service

START_TIMEOUT = 20.0  # a cold interpreter importing everything, on a slow CI machine
STOP_TIMEOUT = 20.0  # drained in a second or two; a loaded CI machine is slower
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Node:
    """One ``moksha start`` process."""

    process: subprocess.Popen[str]
    url: str

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/livesocket/ws"

    def status(self) -> dict[str, Any]:
        reply = httpx.get(f"{self.url}/livesocket/status", timeout=TIMEOUT)
        return dict(reply.json())

    def publish(self, topic: str, body: Any) -> None:
        reply = httpx.post(
            f"{self.url}/livesocket/publish", json={"topic": topic, "body": body}, timeout=TIMEOUT
        )
        assert reply.status_code == 200, reply.text

    def kill(self) -> None:
        self.process.kill()
        self.process.communicate(timeout=STOP_TIMEOUT)

    def terminate(self) -> str:
        """SIGTERM; its stderr once it ended (fails, with that stderr, past STOP_TIMEOUT)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.communicate(timeout=STOP_TIMEOUT)[1]
        except subprocess.TimeoutExpired:
            self.process.kill()
            stderr = self.process.communicate()[1]
            pytest.fail(
                f"the node did not stop within {STOP_TIMEOUT}s of SIGTERM: {stderr[-3000:]}"
            )


@dataclass
class Cluster:
    """Nodes sharing one exchange and one store prefix; start more with :meth:`start`."""

    directory: Path
    settings: dict[str, Any]
    nodes: list[Node] = field(default_factory=list)

    def start(self, count: int = 1, port: int | None = None) -> list[Node]:
        """Start ``count`` nodes at once (on ``port``: one, again); return them once up."""
        started = []
        for _ in range(count):
            port = port or free_port()
            folder = self.directory / f"node-{port}"
            folder.mkdir(exist_ok=True)
            ini = "".join(f"{key} = {value}\n" for key, value in self.settings.items())
            (folder / "development.ini").write_text("[app:main]\n" + ini)
            env = {k: v for k, v in os.environ.items() if not k.startswith("MOKSHA_")}
            process = subprocess.Popen(
                [sys.executable, "-m", "moksha", "start", "--port", str(port)],
                cwd=folder,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            node = Node(process, f"http://127.0.0.1:{port}")
            self.nodes.append(node)
            started.append(node)
            port = None
        for node in started:
            deadline = time.monotonic() + START_TIMEOUT
            answered = False
            while not answered and node.process.poll() is None and time.monotonic() < deadline:
                try:
                    answered = httpx.get(f"{node.url}/ready", timeout=1).status_code == 200
                except httpx.TransportError:
                    time.sleep(0.05)
            if not answered:
                node.process.kill()
                pytest.fail(
                    f"a node did not answer within {START_TIMEOUT}s: {node.process.communicate()}"
                )
        return started


def unique_prefix() -> str:
    """A name of this test's own for the shared brokers and stores."""
    return f"clustertest_{secrets.token_hex(4)}"


@contextmanager
def cluster(tmp_path: Path, **extra: Any) -> Iterator[Cluster]:
    """A cluster on RabbitMQ + Redis with names of its own; its nodes are killed at the end."""
    require_service("RabbitMQ", 5672)
    require_service("Redis", 6379)
    name = unique_prefix()
    settings = {
        "moksha.backends": "amqp",
        "amqp_broker": AMQP_URL,
        "amqp_exchange": name,
        "amqp_queue_prefix": RUN_QUEUE_PREFIX,
        "moksha.cluster.url": REDIS_URL,
        "moksha.cluster.prefix": name,
        "moksha.cluster.ttl": "1.5",
        "moksha.dashboard.demo": "false",
        **extra,
    }
    made = Cluster(tmp_path, settings)
    try:
        yield made
    finally:
        for node in made.nodes:
            if node.process.poll() is None:
                node.kill()
        # In a thread of its own: Playwright's sync API keeps a loop running in this one.
        with ThreadPoolExecutor(1) as worker:
            store_url = settings["moksha.cluster.url"]
            worker.submit(asyncio.run, _clean(name, store_url)).result(timeout=TIMEOUT)


async def drop_redis_keys(prefix: str) -> None:
    """Delete every key under ``<prefix>:`` from the shared Redis."""
    async with redis.asyncio.Redis.from_url(REDIS_URL) as raw:
        keys = [key async for key in raw.scan_iter(f"{prefix}:*")]
        if keys:
            await raw.delete(*keys)


async def _clean(name: str, store_url: str) -> None:
    if store_url.startswith("postgresql"):
        from moksha.cluster.postgres_store import PostgresStore

        store = PostgresStore(store_url, name)
        await store.drop()
        await store.aclose()
    else:
        await drop_redis_keys(name)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(name)


class Listener:
    """A browser-protocol client: subscribes (optionally resuming), collects message frames."""

    def __init__(self, node: Node, pattern: str, since: str | None = None) -> None:
        self.node = node
        self.pattern = pattern
        self.since = since
        self.frames: list[dict[str, Any]] = []
        self.recovered: bool | None = None
        self.close_code: int | None = None

    async def run(self, until_count: int, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Connect, subscribe, collect until ``until_count`` message frames came (bounded).

        Ends early, recording the code, when the node closes the connection.
        """
        async with websockets.connect(self.node.ws_url) as ws:
            body: Any = (
                {"pattern": self.pattern, "since": self.since} if self.since else self.pattern
            )
            await ws.send(json.dumps({"topic": "__topic_subscribe__", "body": body}))
            async with asyncio.timeout(timeout):
                # A resuming client also waits for the verdict, sent after the replay.
                while len(self.frames) < until_count or (self.since and self.recovered is None):
                    try:
                        frame = json.loads(await ws.recv())
                    except websockets.ConnectionClosed as closed:
                        self.close_code = closed.rcvd.code if closed.rcvd else None
                        break
                    if frame["topic"] == "__recovered__":
                        self.recovered = frame["body"]["recovered"]
                    elif not frame["topic"].startswith("__"):
                        self.frames.append(frame)
        return self.frames

    def bodies(self) -> list[Any]:
        return [frame["body"] for frame in self.frames]


class Roamer:
    """A client that keeps reconnecting, to the next node each time, resuming from its last id.

    Over WebSocket (``kind="websocket"``) or Server-Sent Events (``kind="sse"``, resuming
    with ``Last-Event-ID`` as a browser does).  Collects message bodies and verdicts.
    """

    def __init__(self, urls: list[str], pattern: str, kind: str) -> None:
        self.urls = urls
        self.pattern = pattern
        self.kind = kind
        self.bodies: list[Any] = []
        self.verdicts: list[bool] = []
        self.connections = 0
        self.last_id: str | None = None
        self.subscribed = asyncio.Event()
        self.target: Callable[[], int | None] = lambda: None

    def _take(self, frame: dict[str, Any]) -> None:
        if frame["topic"] == "__recovered__":
            self.verdicts.append(frame["body"]["recovered"])
        elif not frame["topic"].startswith("__"):
            self.bodies.append(frame["body"])
            self.last_id = frame["id"] or self.last_id

    def _done(self) -> bool:
        target = self.target()
        return target is not None and len(self.bodies) >= target

    async def run(self, until: int | Callable[[], int | None], timeout: float = 60) -> None:
        """Receive until ``until`` bodies came (bounded by ``timeout`` and by attempts).

        ``until`` may be a function: the count is then known only once it returns one.
        """
        self.target = until if callable(until) else lambda: until
        async with asyncio.timeout(timeout):
            for attempt in range(200):
                url = self.urls[attempt % len(self.urls)]
                try:
                    if self.kind == "websocket":
                        await self._websocket(url)
                    else:
                        await self._sse(url)
                except (OSError, websockets.WebSocketException, httpx.HTTPError):
                    await asyncio.sleep(0.05 * min(attempt, 10))  # a dead node: the next one
                if self._done():
                    return

    async def _websocket(self, url: str) -> None:
        async with websockets.connect(url.replace("http://", "ws://") + "/livesocket/ws") as ws:
            self.connections += 1
            body: Any = self.pattern
            if self.last_id:
                body = {"pattern": self.pattern, "since": self.last_id}
            await ws.send(json.dumps({"topic": "__topic_subscribe__", "body": body}))
            self.subscribed.set()
            while not self._done():
                try:
                    self._take(json.loads(await asyncio.wait_for(ws.recv(), 0.5)))
                except TimeoutError:
                    continue  # the count may have become known meanwhile

    async def _sse(self, url: str) -> None:
        headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
        timeout = httpx.Timeout(5, read=None)
        async with (
            httpx.AsyncClient(timeout=timeout) as http,
            http.stream(
                "GET", f"{url}/livesocket/sse", params={"topic": self.pattern}, headers=headers
            ) as response,
        ):
            response.raise_for_status()
            self.connections += 1
            self.subscribed.set()

            async def read() -> None:
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        self._take(json.loads(line[6:]))

            # The count may become known after the last message came: look every 0.5 s.
            reader = asyncio.create_task(read())
            try:
                while not self._done() and not reader.done():
                    await asyncio.wait({reader}, timeout=0.5)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader  # raises what ended it: a node that went away
