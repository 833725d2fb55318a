"""Soak and malformed-frame run against a real ``moksha start`` (not part of the test suite).

Two phases, against one ``moksha start`` subprocess (memory bus, demo producers
off) on a free port of 127.0.0.1:

1. **soak**: ``--clients`` WebSocket clients subscribe to ``soak.#``; a
   publisher POSTs ``--rate`` messages a second to ``/livesocket/publish``
   for ``--duration`` seconds; every ``--interval`` seconds ``--churn`` of the
   clients (10 %) close and connect again.  Checked: the server's resident
   memory grows less than 10 % from the end of the first interval (warm-up) to
   the end; its open file descriptors come back to what they were before the
   clients came; no client got an ``__error__`` frame or an unexpected close;
   clients that never reconnected got every message.
2. **malformed**: ``--frames`` bad frames, the same number of each class
   (binary non-UTF-8, not JSON, JSON not an object, no topic, unknown control
   topic, empty pattern, pattern not a string, refused publish, deep nesting,
   frame over the size limit, bad token), sent from 10 connections (reconnecting
   when the server closes one, as it must for some classes) while a probe
   client subscribed to ``soak.probe`` receives a message every 20 ms.
   Checked: every bad frame got an ``__error__`` reply or the documented close;
   the probe got every message; the server is still up.

Usage, from the repository root::

    python benchmarks/soak.py                       # 1000 clients, 10 minutes, 10,000 frames
    python benchmarks/soak.py --short               # 100 clients, 10 s, 1,100 frames (the suite's)
    python benchmarks/soak.py --clients 1000 --duration 600 --interval 60 --json

Exit status 0 when every check passed, 1 otherwise; ``--json`` prints the
figures as one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

SUBSCRIBE = "__topic_subscribe__"


# -- the server -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def moksha_start(port: int) -> Any:
    """``moksha start`` in a subprocess, in an empty folder, demo producers off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOKSHA_")}
    env |= {
        "MOKSHA_DASHBOARD_DEMO": "false",
        "MOKSHA_SESSION_SECRET": "soak-" + "x" * 32,
        # The malformed phase sends thousands of frames per connection: past the
        # rate limit they would be refused unread, and the parser never tested.
        "MOKSHA_LIVESOCKET_MAX_MESSAGES_PER_SECOND": "1000000",
        "MOKSHA_LIVESOCKET_TOKEN_SECRET": "soak-secret-" + "y" * 32,
        "MOKSHA_LIVESOCKET_PROTECTED": "soak.private.#",
    }
    with tempfile.TemporaryDirectory() as folder:
        server = subprocess.Popen(
            [sys.executable, "-m", "moksha", "start", "--port", str(port), "-q"],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"moksha start exited: {server.stderr.read().decode()}")  # type: ignore[union-attr]
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/live", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("moksha start did not answer on /live within 30 s")
                time.sleep(0.1)
            yield server
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def server_clients(http: httpx.AsyncClient) -> int:
    return int((await http.get("/livesocket/status")).json()["clients"])


async def until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


# -- phase 1: soak ----------------------------------------------------------


@dataclass
class Client:
    """One subscriber: counts messages, error frames and unexpected closes."""

    url: str
    reconnected: bool = False
    seqs: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    ws: ClientConnection | None = None
    reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await connect(self.url, max_queue=None, open_timeout=30)
        await self.ws.send(json.dumps({"topic": SUBSCRIBE, "body": "soak.#"}))
        self.reader = asyncio.create_task(self._read(self.ws))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for text in ws:
                frame = json.loads(text)
                if frame["topic"].startswith("__"):
                    self.errors.append(str(text)[:200])
                else:
                    self.seqs.add(frame["body"]["seq"])
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code != 1000:
                self.errors.append(f"closed by the server: {exc.rcvd.code} {exc.rcvd.reason}")

    async def reopen(self) -> None:
        """Close, then connect and subscribe again (a browser reloading its page)."""
        await self.close()
        self.reconnected = True
        await self.open()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await self.reader


def publish_steadily(base: str, rate: float, stop: Any, count: Any) -> None:
    """POST ``rate`` messages a second on a fixed schedule until ``stop`` is set.

    Runs in a process of its own, so that the clients' work in this one cannot
    slow the publishing down (each message is read by every client).
    """
    seq, start = 0, time.monotonic()
    pad = "p" * 150
    with httpx.Client(base_url=base, timeout=30, trust_env=False) as http:
        while not stop.is_set():
            body = {"seq": seq, "pad": pad}
            http.post("/livesocket/publish", json={"topic": "soak.tick", "body": body})
            seq += 1
            count.value = seq
            stop.wait(max(0.0, start + seq / rate - time.monotonic()))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def soak(base: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    ws_url = base.replace("http://", "ws://") + "/livesocket/ws"
    async with httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) as http:
        fds_before = open_fds(pid)
        clients = [Client(ws_url) for _ in range(args.clients)]
        for start in range(0, len(clients), 100):  # in batches: the listen backlog is finite
            await asyncio.gather(*(c.open() for c in clients[start : start + 100]))

        async def all_connected() -> bool:
            return await server_clients(http) == args.clients

        await until(all_connected, 60, f"{args.clients} clients to be connected")
        await asyncio.sleep(0.5)  # subscribe frames are read after the connection counts
        spawn = multiprocessing.get_context("spawn")
        stop, count = spawn.Event(), spawn.Value("q", 0)
        publishing = spawn.Process(target=publish_steadily, args=(base, args.rate, stop, count))
        publishing.start()
        server_cpu = cpu_seconds(pid)
        client_cpu = time.process_time()
        rss: list[int] = [rss_bytes(pid)]
        started = time.monotonic()
        rounds = 0
        while (rounds + 1) * args.interval <= args.duration + 1e-6:
            # Rounds on a fixed schedule, however long a churn took.
            await asyncio.sleep(max(0.0, started + (rounds + 1) * args.interval - time.monotonic()))
            churned = random.sample(clients, max(1, int(len(clients) * args.churn)))
            await asyncio.gather(*(client.reopen() for client in churned))
            rounds += 1
            rss.append(rss_bytes(pid))
        await asyncio.sleep(max(0.0, started + args.duration - time.monotonic()))
        stop.set()
        await asyncio.to_thread(publishing.join, 30)
        published = int(count.value)
        elapsed = time.monotonic() - started
        server_cpu = cpu_seconds(pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
        await asyncio.sleep(1.0)  # the last messages reach the clients
        for client in clients:
            await client.close()

        async def all_gone() -> bool:
            return await server_clients(http) == 0

        await until(all_gone, 30, "the clients to be gone")
        deadline = time.monotonic() + 10
        while open_fds(pid) > fds_before and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        fds_after = open_fds(pid)
    steady = [c for c in clients if not c.reconnected]
    missing = [published - len(c.seqs) for c in steady]
    warm = rss[1] if len(rss) > 1 else rss[0]
    growth = (rss[-1] - warm) / warm
    errors = [e for c in clients for e in c.errors]
    result = {
        "clients": args.clients,
        "duration_s": args.duration,
        "reconnect_rounds": rounds,
        "published": published,
        "publish_rate_achieved": round(published / elapsed, 2),
        "server_cpu_share": round(server_cpu / elapsed, 3),
        "clients_cpu_share": round(client_cpu / elapsed, 3),
        "rss_mib": [round(r / 2**20, 1) for r in rss],
        "rss_growth_after_warmup": round(growth, 4),
        "fds_before": fds_before,
        "fds_after": fds_after,
        "error_frames": len(errors),
        "error_examples": errors[:3],
        "steady_clients": len(steady),
        "steady_clients_missing_messages": sum(1 for m in missing if m),
    }
    result["ok"] = (
        growth < 0.10
        and fds_after <= fds_before
        and not errors
        and result["steady_clients_missing_messages"] == 0
    )
    return result


# -- phase 2: malformed frames ----------------------------------------------

BAD_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ0b3BpY3MiOlsiIyJdfQ.bad-signature"
MALFORMED: dict[str, str | bytes] = {
    "binary_not_utf8": b"\xff\xfe\xfd",
    "not_json": "{this is not json",
    "json_not_object": "[1, 2, 3]",
    "no_topic": '{"body": 1}',
    "unknown_control_topic": '{"topic": "__nope__", "body": 1}',
    "empty_pattern": '{"topic": "__topic_subscribe__", "body": ""}',
    "pattern_not_string": '{"topic": "__topic_subscribe__", "body": 5}',
    "refused_publish": '{"topic": "soak.tick", "body": 1}',
    "deep_nesting": "[" * 20000 + "]" * 20000,
    "over_size_limit": '{"topic": "x", "body": "' + "x" * 70000 + '"}',
    "bad_token": json.dumps({"topic": "__auth__", "body": BAD_TOKEN}),
}
# What the server may do instead of an __error__ reply, per class (documented close codes).
CLOSES = {"over_size_limit": {1009}, "bad_token": {4001}, "refused_publish": {1008}}


async def attacker(url: str, kinds: list[str], tally: dict[str, dict[str, int]]) -> None:
    """Send each frame of ``kinds`` and wait for its answer; reconnect when closed."""
    ws: ClientConnection | None = None
    for kind in kinds:
        if ws is None:
            ws = await connect(url, max_size=None, open_timeout=30)
        tally[kind]["sent"] += 1
        try:
            await ws.send(MALFORMED[kind])
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            tally[kind]["error" if reply.get("topic") == "__error__" else "other"] += 1
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 0
            tally[kind]["closed" if code in CLOSES.get(kind, ()) else f"closed_{code}"] += 1
            ws = None
        except TimeoutError:
            tally[kind]["no_answer"] += 1
    if ws is not None:
        await ws.close()


async def malformed(base: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    ws_url = base.replace("http://", "ws://") + "/livesocket/ws"
    per_class = max(1, args.frames // len(MALFORMED))
    frames = [kind for kind in MALFORMED for _ in range(per_class)]
    random.shuffle(frames)
    tally = {kind: dict.fromkeys(("sent", "error", "closed"), 0) for kind in MALFORMED}
    for counts in tally.values():
        counts.setdefault("other", 0)
    async with httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) as http:
        probe = await connect(ws_url, open_timeout=30)
        await probe.send(json.dumps({"topic": SUBSCRIBE, "body": "soak.probe"}))
        await asyncio.sleep(0.5)
        latencies: list[float] = []
        sent_at: dict[int, float] = {}

        async def read_probe() -> None:
            async for text in probe:
                frame = json.loads(text)
                seq = frame["body"]["seq"]
                latencies.append(time.monotonic() - sent_at[seq])

        reading = asyncio.create_task(read_probe())
        attackers = [asyncio.create_task(attacker(ws_url, frames[i::10], tally)) for i in range(10)]
        seq = 0
        while not all(task.done() for task in attackers):
            sent_at[seq] = time.monotonic()
            await http.post(
                "/livesocket/publish", json={"topic": "soak.probe", "body": {"seq": seq}}
            )
            seq += 1
            await asyncio.sleep(0.02)
        await asyncio.gather(*attackers)
        deadline = time.monotonic() + 5
        while len(latencies) < seq and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await probe.close()
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await reading
    answered = all(c["sent"] == c["error"] + c["closed"] for c in tally.values())
    return {
        "frames": sum(c["sent"] for c in tally.values()),
        "per_class": tally,
        "every_frame_answered": answered,
        "probe_sent": seq,
        "probe_received": len(latencies),
        "probe_latency_p50_ms": round(statistics.median(latencies) * 1000, 1)
        if latencies
        else None,
        "probe_latency_max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "server_rss_mib": round(rss_bytes(pid) / 2**20, 1),
        "ok": answered and len(latencies) == seq,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="the suite's bounded run")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of soak")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between churns")
    parser.add_argument("--churn", type=float, default=0.10, help="share of clients reconnecting")
    parser.add_argument("--rate", type=float, default=10.0, help="messages published a second")
    parser.add_argument("--frames", type=int, default=10_000, help="malformed frames in all")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.short:
        args.clients, args.duration, args.interval, args.frames = 100, 10.0, 2.5, 1100
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with moksha_start(port) as server:
        results = {
            "soak": asyncio.run(soak(base, server.pid, args)),
            "malformed": asyncio.run(malformed(base, server.pid, args)),
        }
        results["server_alive"] = server.poll() is None
    ok = results["soak"]["ok"] and results["malformed"]["ok"] and results["server_alive"]
    results["ok"] = ok
    if args.json:
        print(json.dumps(results))
    else:
        print(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
