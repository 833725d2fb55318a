"""Live-socket fan-out to many WebSocket clients: Moksha against ``websockets.broadcast()``.

The server process runs, side by side in one event loop (``--loop``), on 127.0.0.1:

* the *baseline*: a plain ``websockets`` server (the new asyncio API) that adds
  each connection to a set once it has sent its subscribe frame, and publishes
  with ``websockets.asyncio.server.broadcast(subscribers, frame)``;
* *Moksha*: a ``CentralMokshaHub`` (memory bus) serving its live socket
  (``moksha.livesocket.backend = websocket``, port 0, as ``moksha start`` does:
  one uvicorn server), defaults otherwise.  It is measured twice, publishing
  through its public API two ways: ``await hub.publish(topic, body)`` on the
  loop, and ``hub.send_message(topic, body)`` from a plain thread (the way
  original-style scripts publish: each call waits for the hub's loop);
* the *peer*, unless ``--no-socketio``: python-socketio (``AsyncServer`` under
  uvicorn, ``pip install -e '.[bench]'``), clients joining a room, messages sent
  with ``await sio.emit("event", event, room=TOPIC)``.

``--clients`` WebSocket clients (``websockets``' sans-I/O protocol under an
``asyncio.Protocol``, so the clients' own queueing does not set the latencies;
raw engine.io v4 frames for socket.io) connect to each server from ``--procs``
separate processes and subscribe to the same topic.  Bodies are ~200 bytes of JSON
holding the run, a sequence number and the publish time (``time.monotonic()``:
CLOCK_MONOTONIC, the same clock in every process); each client decodes every
frame, counts it once per sequence number and records its latency.  Each run
checks that every client got every message once.  Modes:

* *saturated*: ``--messages`` published as fast as the server takes them;
  deliveries/s = messages x clients / (last delivery - first publish);
* *paced*: ``--paced`` messages at ``--rate`` per second; latency p50/p99;
* *half*: paced at half the baseline's median saturated rate, ``--half-seconds`` long;
* *slow client*: paced at ``--rate`` again, after one more connection to the
  baseline and to Moksha (not the peer) subscribed and stopped reading (a small
  receive buffer, nothing read) and five saturated bursts filled its buffers; the
  ``--clients`` that read must still get every message, and the stalled one's
  backlog on the server is printed (Moksha: its bounded outbox; the baseline:
  its transport buffer, which nothing bounds).

Each figure is the median of ``--repeat`` runs; the sides alternate which goes
first.  Keepalive pings are off on the clients, the baseline and the peer: on a loaded
machine a client reading 20 s behind a burst misses its pong deadline and is
dropped (Moksha's uvicorn keeps its default, 20 s + 20 s).

Then, unless ``--idle 0``, *memory*: for each of the baseline and Moksha, a
fresh server process takes ``--idle`` idle subscribed connections (clients in
``--procs`` other processes, the open-files limit raised as needed) and the RSS
it gained per connection is printed.  Run from the repository root::

    python benchmarks/bench_livesocket.py [--loop asyncio|uvloop] [--clients 1000] [--procs 2]
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import gc
import json
import multiprocessing
import os
import platform
import resource
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from importlib import metadata
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from moksha.config import load_config
from moksha.hub import CentralMokshaHub

TOPIC = "bench.livesocket.event"
SUBSCRIBE = json.dumps({"topic": "__topic_subscribe__", "body": TOPIC})
PAD = (
    "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua. ut enim ad minim"
)
SIDES = ("websockets", "moksha", "moksha-send", "socketio")
LABELS = {
    "websockets": "websockets broadcast()",
    "moksha": "Moksha, await hub.publish",
    "moksha-send": "Moksha, hub.send_message",
    "socketio": "python-socketio emit()",
}
MODES = ("saturated", "paced", "half", "slow")
QUEUE_SIZE = 1000  # Moksha's default moksha.livesocket.queue_size: a burst beyond it conflates
SETUP_TIMEOUT = 120.0  # connecting and subscribing every client
RUN_TIMEOUT = 120.0  # beyond the publishing itself (a loaded machine is slow); a hang fails
IDLE_TIMEOUT = 600.0  # a client process waiting for its next command
CONNECT_BATCH = 100  # connections opened at once: inside the listen backlog (128)
POLL = 0.02  # seconds between looks at a server's subscriber count
SOCKETIO_PATH = "/socket.io/?EIO=4&transport=websocket"
STALLED_RCVBUF = 4096  # bytes: the stalled client's kernel buffer stays small


def loop_runner(name: str) -> asyncio.Runner:
    """An ``asyncio.Runner`` on the default loop or on uvloop."""
    if name == "uvloop":
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    return asyncio.Runner()


def run_on(loop: str, main: Coroutine[Any, Any, Any]) -> Any:
    with loop_runner(loop) as runner:
        return runner.run(main)


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


def rss_bytes() -> int:
    """This process's resident set size now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


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


def is_socketio(url: str) -> bool:
    return "/socket.io/" in url


class Reader(asyncio.Protocol):
    """One client connection, read as cheaply as Python allows: websockets' sans-I/O protocol.

    The clients share the machine's cores with the server they measure; an
    asyncio connection object per client (a reader, an assembler, a future per
    frame) would cost them several times the server's CPU per delivery, and
    their queueing would then set the latencies measured.  Each frame's text
    goes to ``on_text`` as it is parsed; pings are answered by the protocol.
    """

    def __init__(self, url: str, compression: str | None, on_text: Callable[[Reader, str], None]):
        extensions = enable_client_permessage_deflate(None) if compression else None
        self.protocol = ClientProtocol(parse_uri(url), extensions=extensions)
        self.url = url
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self.on_text(self, event.data.decode())
            elif not self.open.done():  # the handshake's response
                if protocol.handshake_exc is not None:
                    self.open.set_exception(protocol.handshake_exc)
                else:
                    self.open.set_result(None)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.open.done():
            self.open.set_exception(exc or ConnectionError("closed during the handshake"))

    def send(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        self._flush()

    def _flush(self) -> None:
        data = self.protocol.data_to_send()
        if data and self.transport is not None:
            self.transport.write(b"".join(data))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def subscribe(reader: Reader, frame: str) -> bool:
    """Answer the handshake frames; True when ``frame`` is not a message to count.

    Moksha's subscribe frame (the baseline reads the same) goes out as soon as
    the connection opens; socket.io's after engine.io's "open" and the
    namespace's connect; engine.io's pings get their pong.
    """
    if not is_socketio(reader.url):
        return False
    if frame.startswith("42"):
        return False
    if frame.startswith("0{"):  # engine.io "open": 0{"sid": ...}
        reader.send("40")  # connect to the default namespace
    elif frame.startswith("40"):  # 40{"sid": ...}
        reader.send("42" + json.dumps(["subscribe", TOPIC]))
    elif frame == "2":  # engine.io ping: answer, or the server hangs up
        reader.send("3")
    return True


async def open_client(
    url: str, compression: str | None, on_text: Callable[[Reader, str], None]
) -> Reader:
    host, port = url.removeprefix("ws://").split("/", 1)[0].rsplit(":", 1)
    loop = asyncio.get_running_loop()
    _, reader = await loop.create_connection(
        lambda: Reader(url, compression, on_text), host, int(port)
    )
    await reader.open
    if not is_socketio(url):
        reader.send(SUBSCRIBE)
    return reader


async def open_stalled(url: str) -> ClientConnection:
    """A connection that subscribes, then reads nothing more (its kernel buffer kept small)."""
    host, port = url.removeprefix("ws://").split("/", 1)[0].rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    client = await connect(
        url, sock=sock, compression=None, max_queue=1, proxy=None, ping_interval=None
    )
    await client.send(SUBSCRIBE)
    return client


async def run_clients(
    urls: Sequence[str], count: int, compression: str | None, pipe: Connection
) -> None:
    """``count`` clients per URL; report each run the parent announces, until told to stop."""
    tallies: dict[int, RunTally] = {}
    index: dict[Reader, int] = {}
    loads, monotonic = json.loads, time.monotonic

    def on_text(reader: Reader, frame: str) -> None:
        now = monotonic()
        if subscribe(reader, frame):
            return
        body = loads(frame[2:])[1]["body"] if frame.startswith("42") else loads(frame)["body"]
        run = body["run"]
        tally = tallies.get(run) or tallies.setdefault(run, RunTally(body["of"], count))
        tally.record(index[reader], body["seq"], body["t"], now)

    clients: list[Reader] = []
    stalled: list[ClientConnection] = []
    async with asyncio.timeout(SETUP_TIMEOUT):
        for url in urls:
            for start in range(0, count, CONNECT_BATCH):
                batch = min(CONNECT_BATCH, count - start)
                opened = await asyncio.gather(
                    *(open_client(url, compression, on_text) for _ in range(batch))
                )
                for reader in opened:
                    index[reader] = len(clients) % count
                    clients.append(reader)
    pipe.send("connected")
    try:
        while (command := await asyncio.to_thread(receive, pipe, IDLE_TIMEOUT)) is not None:
            if command[0] == "stall":
                async with asyncio.timeout(SETUP_TIMEOUT):
                    stalled += [await open_stalled(url) for url in command[1]]
                pipe.send(("stalled", [c.local_address[1] for c in stalled]))
                continue
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
        for reader in clients:  # no closing handshake: a stalled client would not answer
            reader.abort()
        for client in stalled:
            client.transport.abort()


def client_main(
    urls: list[str], count: int, compression: str | None, loop: str, pipe: Connection
) -> None:
    """A client process: ``count`` connections to each URL."""
    raise_fd_limit(len(urls) * count + 100)
    run_on(loop, run_clients(urls, count, compression, pipe))


# -- the server process ------------------------------------------------------------


@dataclass
class Run:
    rate: float  # deliveries/s, first publish to the last delivery
    p50: float  # seconds, publish to client
    p99: float
    server_cpu: float  # CPU seconds per delivery: the server process
    client_cpu: float  # CPU seconds per delivery: the client processes together


Publisher = Callable[[int, int, float | None], Awaitable[None]]


def hub_config(**more: Any) -> Any:
    """The hub's configuration: the memory bus and the live socket on a free port."""
    return load_config(
        overrides={
            "moksha.backends": "memory",
            "moksha.livesocket.backend": "websocket",
            "moksha.livesocket.websocket.port": 0,
            **more,
        },
        environ={},
        search=False,
    )


class SocketIOPeer:
    """python-socketio under uvicorn: clients join the topic's room; ``emit`` to the room."""

    def __init__(self) -> None:
        import socketio
        import uvicorn

        # Keepalive as long as the run, as on the baseline (see the module docstring).
        self.sio = socketio.AsyncServer(async_mode="asgi", ping_interval=600, ping_timeout=600)
        self.subscribers = 0

        async def subscribe(sid: str, topic: str) -> None:
            await self.sio.enter_room(sid, topic)
            self.subscribers += 1

        self.sio.on("subscribe", subscribe)
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=2048)
        config = uvicorn.Config(
            socketio.ASGIApp(self.sio), log_level="warning", lifespan="off", ws_ping_interval=None
        )
        self.server = uvicorn.Server(config)
        self.url = f"ws://127.0.0.1:{self.sock.getsockname()[1]}{SOCKETIO_PATH}"

    async def emit(self, event: dict[str, Any]) -> None:
        await self.sio.emit("event", event, room=TOPIC)


class Servers:
    """The servers, their publishers, and the client processes' pipes."""

    def __init__(
        self,
        hub: CentralMokshaHub,
        peer: SocketIOPeer | None,
        pipes: list[Connection],
        clients: int,
    ) -> None:
        self.hub = hub
        self.peer = peer
        self.pipes = pipes
        self.clients = clients
        self.subscribers: set[ServerConnection] = set()
        self.publishers: dict[str, Publisher] = {
            "websockets": self._broadcast,
            "moksha": self._hub_publish,
            "moksha-send": self._hub_send_message,
            "socketio": self._socketio_emit,
        }
        self._next_run = 0

    async def handle(self, connection: ServerConnection) -> None:
        """The baseline's whole protocol: one subscribe frame, then only frames out."""
        try:
            if await connection.recv() == SUBSCRIBE:
                self.subscribers.add(connection)
            await connection.wait_closed()
        finally:
            self.subscribers.discard(connection)

    async def _paced(
        self, publish: Callable[[int], Awaitable[None]], of: int, rate: float | None
    ) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        for seq in range(of):
            if rate:  # pacing, not synchronisation: the next publish is due then
                await asyncio.sleep(began + seq / rate - loop.time())
            await publish(seq)

    async def _broadcast(self, run: int, of: int, rate: float | None) -> None:
        async def one(seq: int) -> None:
            event = {"topic": TOPIC, "body": make_body(run, of, seq), "id": f"{run}-{seq}"}
            broadcast(self.subscribers, json.dumps(event, separators=(",", ":")))

        await self._paced(one, of, rate)

    async def _hub_publish(self, run: int, of: int, rate: float | None) -> None:
        async def one(seq: int) -> None:
            await self.hub.publish(TOPIC, make_body(run, of, seq))

        await self._paced(one, of, rate)

    async def _socketio_emit(self, run: int, of: int, rate: float | None) -> None:
        assert self.peer is not None

        async def one(seq: int) -> None:
            assert self.peer is not None
            event = {"topic": TOPIC, "body": make_body(run, of, seq), "id": f"{run}-{seq}"}
            await self.peer.emit(event)

        await self._paced(one, of, rate)

    async def _hub_send_message(self, run: int, of: int, rate: float | None) -> None:
        def plain_python() -> None:  # as a script or a WSGI app publishes: another thread
            began = time.monotonic()
            for seq in range(of):
                if rate and (delay := began + seq / rate - time.monotonic()) > 0:
                    time.sleep(delay)  # pacing, not synchronisation
                self.hub.send_message(TOPIC, make_body(run, of, seq))

        await asyncio.to_thread(plain_python)

    def subscribed(self, stalled: bool) -> list[int]:
        live = self.hub.livesocket
        assert live is not None
        counts = [len(self.subscribers), live.stats()["subscriptions"]]
        peer = self.peer is not None and not stalled
        return counts + ([self.peer.subscribers] if self.peer is not None and peer else [])

    async def wait_subscribed(self, expected: int, stalled: bool = False) -> None:
        """Until every server counts ``expected`` subscribed clients (bounded).

        With ``stalled``, only the baseline and Moksha: the peer gets no stalled client.
        """
        async with asyncio.timeout(SETUP_TIMEOUT):
            while min(self.subscribed(stalled)) < expected:
                await asyncio.sleep(POLL)

    async def measure(self, side: str, of: int, rate: float | None) -> Run:
        """One run: ``of`` messages on ``side``, as fast as possible or at ``rate`` per second."""
        run, self._next_run = self._next_run, self._next_run + 1
        timeout = RUN_TIMEOUT + (of / rate if rate else 0.0)
        for pipe in self.pipes:
            pipe.send(("run", run, of, timeout))
        cpu = time.process_time()
        started = time.monotonic()
        await self.publishers[side](run, of, rate)
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

    def shrink_send_buffers(self, ports: list[int]) -> None:
        """Give the stalled clients' server sockets a small send buffer.

        Linux grows a socket's send buffer up to ``tcp_wmem`` (4 MiB): the stalled
        client's backlog would stay in the kernel for the whole run instead of
        showing where each server keeps it.
        """
        live = self.hub.livesocket
        assert live is not None
        transports = [c.transport for c in self.subscribers] + [
            c.sink.transport  # type: ignore[attr-defined]
            for c in live.clients
            if c.sink is not None
        ]
        for transport in transports:
            if transport.get_extra_info("peername")[1] in ports:
                sock = transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STALLED_RCVBUF)

    def stalled_backlog(self) -> dict[str, str]:
        """What waits on each server for the stalled clients."""
        live = self.hub.livesocket
        assert live is not None
        behind = [c for c in live.clients if c.behind or len(c.outbox)]
        waiting = sum(
            c.sink.transport.get_write_buffer_size()  # type: ignore[attr-defined]
            for c in behind
            if c.sink is not None
        )
        raw = sum(c.transport.get_write_buffer_size() for c in self.subscribers)
        return {
            "websockets": f"{raw:,} bytes in transport buffers (unbounded)",
            "moksha": f"{len(behind)} client(s) behind: {sum(len(c.outbox) for c in behind)} "
            f"frames in the outbox (bounded at {live.queue_size}), {waiting:,} bytes in the "
            f"transport buffer, {live.stats()['conflated']} conflated",
        }


async def measure_all(args: argparse.Namespace) -> tuple[dict[tuple[str, str], list[Run]], Any]:
    """Start the servers and the client processes; run every measurement."""
    context = multiprocessing.get_context("spawn")
    per_process = args.clients // args.procs
    sides = [side for side in SIDES if args.socketio or side != "socketio"]
    async with CentralMokshaHub(hub_config(), consumers=[], producers=[]) as hub:
        assert hub.livesocket_url is not None
        peer = SocketIOPeer() if args.socketio else None
        pipes: list[Connection] = []
        processes: list[multiprocessing.process.BaseProcess] = []
        servers = Servers(hub, peer, pipes, args.clients)
        async with contextlib.AsyncExitStack() as stack:
            server = await stack.enter_async_context(
                serve(
                    servers.handle,
                    "127.0.0.1",
                    0,
                    compression=args.compression,
                    backlog=2048,
                    ping_interval=None,
                )
            )
            port = server.sockets[0].getsockname()[1]
            urls = [f"ws://127.0.0.1:{port}/", hub.livesocket_url.replace("http", "ws", 1) + "/"]
            peer_task = None
            if peer is not None:
                peer_task = asyncio.create_task(peer.server.serve(sockets=[peer.sock]))
                urls.append(peer.url)
            try:
                for _ in range(args.procs):
                    pipe, child = context.Pipe()
                    process = context.Process(
                        target=client_main,
                        args=(urls, per_process, args.compression, args.loop, child),
                    )
                    process.start()
                    pipes.append(pipe)
                    processes.append(process)
                for pipe in pipes:
                    if await asyncio.to_thread(receive, pipe, SETUP_TIMEOUT) != "connected":
                        raise RuntimeError("a client process did not connect its clients")
                await servers.wait_subscribed(args.clients)
                for side in sides:  # warm-up, not measured: every path, every connection
                    await servers.measure(side, 10, None)
                runs: dict[tuple[str, str], list[Run]] = {}

                async def each(mode: str, of: int, rate: float | None) -> None:
                    for r in range(args.repeat):
                        # Alternate the order, so drift on a noisy machine hits every side alike.
                        for side in sides if r % 2 == 0 else sides[::-1]:
                            run = await servers.measure(side, of, rate)
                            runs.setdefault((mode, side), []).append(run)

                await each("saturated", args.messages, None)
                await each("paced", args.paced, args.rate)
                base = statistics.median(r.rate for r in runs["saturated", "websockets"])
                args.half_rate = base / args.clients / 2
                await each(
                    "half", max(1, round(args.half_rate * args.half_seconds)), args.half_rate
                )
                pipes[0].send(("stall", urls[:2]))  # the baseline and Moksha
                stalled = await asyncio.to_thread(receive, pipes[0], SETUP_TIMEOUT)
                if not stalled or stalled[0] != "stalled":
                    raise RuntimeError("the stalled clients did not connect")
                await servers.wait_subscribed(args.clients + 1, stalled=True)
                servers.shrink_send_buffers(stalled[1])
                sides = ["websockets", "moksha"]
                for side in sides:  # fill the stalled clients' buffers, then measure
                    for _ in range(5):
                        await servers.measure(side, args.messages, None)
                await each("slow", args.paced, args.rate)
                return runs, servers.stalled_backlog()
            finally:
                for pipe in pipes:
                    with contextlib.suppress(OSError):  # that process is gone already
                        pipe.send(("stop",))
                for process in processes:
                    await asyncio.to_thread(process.join, RUN_TIMEOUT)
                    if process.is_alive():
                        process.terminate()
                if peer is not None and peer_task is not None:
                    peer.server.should_exit = True
                    await peer_task


# -- memory: idle connections, each server in a fresh process ----------------------


async def memory_server(side: str, expected: int, pipe: Connection) -> None:
    """Serve ``side`` alone; report RSS before and once ``expected`` clients subscribed."""

    async def report(url: str, subscribed: Callable[[], int]) -> None:
        gc.collect()
        pipe.send(("ready", url, rss_bytes()))
        async with asyncio.timeout(SETUP_TIMEOUT * 2):
            while subscribed() < expected:
                await asyncio.sleep(POLL)
        gc.collect()
        pipe.send(("subscribed", rss_bytes()))
        await asyncio.to_thread(receive, pipe, IDLE_TIMEOUT)  # until told to stop

    if side == "websockets":
        subscribers: set[ServerConnection] = set()

        async def handle(connection: ServerConnection) -> None:
            try:
                if await connection.recv() == SUBSCRIBE:
                    subscribers.add(connection)
                await connection.wait_closed()
            finally:
                subscribers.discard(connection)

        async with serve(handle, "127.0.0.1", 0, backlog=2048, ping_interval=None) as server:
            port = server.sockets[0].getsockname()[1]
            await report(f"ws://127.0.0.1:{port}/", lambda: len(subscribers))
    else:
        async with CentralMokshaHub(hub_config(), consumers=[], producers=[]) as hub:
            live, url = hub.livesocket, hub.livesocket_url
            assert live is not None and url is not None
            await report(url.replace("http", "ws", 1) + "/", lambda: live.stats()["subscriptions"])


def memory_server_main(side: str, expected: int, loop: str, pipe: Connection) -> None:
    raise_fd_limit(expected + 200)
    run_on(loop, memory_server(side, expected, pipe))


def measure_memory(args: argparse.Namespace) -> dict[str, tuple[int, int]]:
    """RSS of each server before and with ``--idle`` idle subscribed connections."""
    context = multiprocessing.get_context("spawn")
    found: dict[str, tuple[int, int]] = {}
    for side in ("websockets", "moksha"):
        pipe, child = context.Pipe()
        server = context.Process(
            target=memory_server_main, args=(side, args.idle, args.loop, child)
        )
        server.start()
        clients: list[tuple[Connection, multiprocessing.process.BaseProcess]] = []
        try:
            ready = receive(pipe, SETUP_TIMEOUT)
            if not ready or ready[0] != "ready":
                raise RuntimeError(f"{side}: the memory server did not start")
            _, url, before = ready
            for _ in range(args.procs):
                theirs, child_pipe = context.Pipe()
                process = context.Process(
                    target=client_main,
                    args=([url], args.idle // args.procs, None, args.loop, child_pipe),
                )
                process.start()
                clients.append((theirs, process))
            for theirs, _ in clients:
                if receive(theirs, SETUP_TIMEOUT * 2) != "connected":
                    raise RuntimeError(f"{side}: a client process did not connect")
            subscribed = receive(pipe, SETUP_TIMEOUT * 2)
            if not subscribed or subscribed[0] != "subscribed":
                raise RuntimeError(f"{side}: not every idle client subscribed")
            found[side] = (before, subscribed[1])
        finally:
            for theirs, process in clients:
                with contextlib.suppress(OSError):
                    theirs.send(("stop",))
                process.join(RUN_TIMEOUT)
                if process.is_alive():
                    process.terminate()
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
            server.join(RUN_TIMEOUT)
            if server.is_alive():
                server.terminate()
    return found


# -- the report ------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def report(
    runs: dict[tuple[str, str], list[Run]], backlog: dict[str, str], args: argparse.Namespace
) -> None:
    """Print each mode's table and ratios against the baseline."""
    fields = ("rate", "p50", "p99", "server_cpu", "client_cpu")
    med = {
        key: Run(*(statistics.median(getattr(run, name) for run in rs) for name in fields))
        for key, rs in runs.items()
    }
    modes = {
        "saturated": f"{args.messages} messages as fast as possible, publish to last delivery",
        "paced": f"{args.paced} messages at {args.rate:g}/s, latency publish -> client",
        "half": f"at half the baseline's saturated rate: {args.half_rate:,.0f} messages/s "
        f"for {args.half_seconds:g} s",
        "slow client": f"{args.paced} messages at {args.rate:g}/s to the {args.clients} readers, "
        "with one more client per server that stopped reading",
    }
    for mode, how in modes.items():
        key = mode.split()[0]
        print(f"\n{mode} ({how})")
        print(
            f"{'side':<28} {'deliveries/s':>13} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'CPU us/delivery: server':>24} {'clients':>8}   runs (deliveries/s / p99 ms)"
        )
        sides = [side for side in SIDES if (key, side) in med]
        for side in sides:
            m = med[key, side]
            every = ", ".join(f"{r.rate:,.0f} / {_ms(r.p99)}" for r in runs[key, side])
            print(
                f"{LABELS[side]:<28} {m.rate:>13,.0f} {_ms(m.p50):>8} {_ms(m.p99):>8} "
                f"{m.server_cpu * 1e6:>24.2f} {m.client_cpu * 1e6:>8.2f}   {every}"
            )
        base = med[key, "websockets"]
        for side in sides[1:]:
            ours = med[key, side]
            print(
                f"ratio {LABELS[side]} / websockets: deliveries/s {ours.rate / base.rate:.2f}, "
                f"p99 {ours.p99 / base.p99:.2f}x, server CPU per delivery "
                f"{ours.server_cpu / base.server_cpu:.2f}x"
            )
        if key == "slow":
            for side, text in backlog.items():
                print(f"stalled client, {LABELS[side]}: {text}")
        if key == "saturated" and (key, "socketio") in med:
            peer = med[key, "socketio"]
            print(
                f"Moksha / python-socketio: deliveries/s {med[key, 'moksha'].rate / peer.rate:.2f}"
            )


def report_memory(found: dict[str, tuple[int, int]], idle: int) -> None:
    print(f"\nmemory ({idle:,} idle subscribed connections, each server in a fresh process)")
    print(f"{'side':<28} {'RSS before MB':>14} {'RSS after MB':>13} {'KiB/connection':>15}")
    per = {}
    for side, (before, after) in found.items():
        per[side] = (after - before) / idle
        print(
            f"{LABELS[side]:<28} {before / 2**20:>14.1f} {after / 2**20:>13.1f} "
            f"{per[side] / 1024:>15.1f}"
        )
    print(f"ratio Moksha / websockets: RSS per connection {per['moksha'] / per['websockets']:.2f}x")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000, help="clients per side")
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--messages", type=int, default=200, help="messages per saturated run")
    parser.add_argument("--paced", type=int, default=40, help="messages per paced run")
    parser.add_argument("--rate", type=float, default=20.0, help="paced messages per second")
    parser.add_argument(
        "--half-seconds", type=float, default=2.0, help="length of a half-rate run, in seconds"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--no-socketio", dest="socketio", action="store_false", help="leave the peer out"
    )
    parser.add_argument(
        "--idle", type=int, default=10_000, help="idle connections for the memory figure (0: skip)"
    )
    parser.add_argument(
        "--compression",
        choices=("none", "deflate"),
        default="none",
        help="permessage-deflate, negotiated by the clients (browsers offer it)",
    )
    args = parser.parse_args(argv)
    args.compression = None if args.compression == "none" else args.compression
    if args.clients < 1 or args.procs < 1 or args.clients % args.procs or args.idle % args.procs:
        parser.error("--clients and --idle must be positive multiples of --procs")
    if not 1 <= args.messages <= QUEUE_SIZE or args.paced < 1 or args.rate <= 0:
        parser.error(f"--messages must be 1 to {QUEUE_SIZE} (a larger burst conflates)")
    raise_fd_limit(max(len(SIDES) * args.clients, args.idle) + 200)
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("websockets", "uvicorn", "python-socketio")
        if name != "python-socketio" or args.socketio
    )
    print(f"python {platform.python_version()}, {versions}, loop: {args.loop}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}; clients: {args.clients} per side in {args.procs} processes, "
        f"compression: {args.compression or 'none'}, open files: "
        f"{resource.getrlimit(resource.RLIMIT_NOFILE)[0]}, repeat: {args.repeat} (median)"
    )
    began = time.perf_counter()
    runs, backlog = run_on(args.loop, measure_all(args))
    report(runs, backlog, args)
    if args.idle:
        report_memory(measure_memory(args), args.idle)
    print(f"\ntotal time {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
