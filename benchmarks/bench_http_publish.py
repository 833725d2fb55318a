"""HTTP publish on one kept-alive connection: Moksha against a bare Starlette endpoint.

What ``moksha send``, webhooks and every non-Python producer do: ``POST
/livesocket/publish`` with ``{"topic", "body"}``, one request after the other
on one kept-alive connection (``httpx.Client``).  Measured side by side, in
one server thread and one event loop, on 127.0.0.1:

* the *baseline*: a bare Starlette app under uvicorn (``uvicorn.Server`` bound
  the ordinary way, ``host``/``port``), one ``POST`` route that reads the JSON
  body and answers ``{"id", "topic"}``, as Moksha's does;
* *Moksha (hub)*: a ``CentralMokshaHub`` (memory bus) serving its live socket
  on a port of its own (``moksha.livesocket.backend = websocket``), which
  ``moksha send --hub`` talks to;
* *Moksha (start)*: the whole site ``moksha start`` serves (``create_app``:
  the dashboard, the middleware, the live socket; the monitoring routes) on one port.

Each side gets ``--warmup`` requests, then ``--requests`` timed ones; printed
are the median and p99 time per request and the request rate, and Moksha's
rate as a ratio of the baseline's (the goal: median < 2 ms, ratio >= 0.8).
Each figure is the median of ``--repeat`` runs; the sides take turns going
first.  Run from the repository root::

    python benchmarks/bench_http_publish.py [--requests 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import threading
import time
from collections.abc import AsyncIterator, Callable

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from moksha.config import Config
from moksha.hub import CentralMokshaHub
from moksha.livesocket import LiveSocket, LiveSocketServer, listen
from moksha.monitoring import Monitor, MonitoringApp
from moksha.web import create_app

PUBLISH = {"topic": "bench.http", "body": {"n": 0, "text": "x" * 160}}


async def _bare_publish(request: Request) -> Response:
    data = await request.json()
    return JSONResponse({"id": "bare", "topic": data["topic"]})


@contextlib.asynccontextmanager
async def bare_server() -> AsyncIterator[str]:
    app = Starlette(routes=[Route("/livesocket/publish", _bare_publish, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve())
    for _ in range(500):  # bounded: 5 s
        if server.started:
            break
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


@contextlib.asynccontextmanager
async def hub_server() -> AsyncIterator[str]:
    config = {
        "moksha.backends": "memory",
        "moksha.livesocket.backend": "websocket",
        "moksha.livesocket.websocket.port": 0,
    }
    async with CentralMokshaHub(config) as hub:
        assert hub.livesocket_url is not None
        yield hub.livesocket_url


@contextlib.asynccontextmanager
async def start_server() -> AsyncIterator[str]:
    config = Config.coerce({"moksha.backends": "memory", "moksha.dashboard.demo": "false"})
    async with CentralMokshaHub(config) as hub:
        live = LiveSocket(hub, config)
        await live.start()
        app = create_app(hub, config, live=live)
        async with Monitor(hub, live=live) as monitor:
            site = MonitoringApp(app, monitor)  # /metrics, /live, /ready: as moksha start has
            server = LiveSocketServer(site, listen("127.0.0.1", 0), live.policy.max_frame_bytes)
            serving = asyncio.create_task(server.serve())
            try:
                yield server.url
            finally:
                for client in list(live.clients):
                    live.disconnect(client)
                server.stop()
                await serving
        await app.aclose()
        await live.aclose()


SIDES: dict[str, Callable[[], contextlib.AbstractAsyncContextManager[str]]] = {
    "bare Starlette/uvicorn": bare_server,
    "Moksha (hub)": hub_server,
    "Moksha (start)": start_server,
}


class Servers:
    """Every side's server, on one event loop in a thread of its own."""

    def __init__(self) -> None:
        self.urls: dict[str, str] = {}
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with contextlib.AsyncExitStack() as stack:
            for name, side in SIDES.items():
                self.urls[name] = await stack.enter_async_context(side())
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Servers:
        self._thread.start()
        if not self._ready.wait(30):
            raise SystemExit("the servers did not start within 30 s")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def run(url: str, warmup: int, requests: int) -> list[float]:
    """Seconds per request, ``requests`` of them, on one kept-alive connection."""
    times: list[float] = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for n in range(warmup + requests):
            started = time.perf_counter()
            response = client.post("/livesocket/publish", json=PUBLISH)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise SystemExit(f"{url}: HTTP {response.status_code}: {response.text}")
            if n >= warmup:
                times.append(elapsed)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in SIDES}
    with Servers() as servers:
        names = list(SIDES)
        for repeat in range(args.repeat):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in order:
                times = sorted(run(servers.urls[name], args.warmup, args.requests))
                median = statistics.median(times)
                p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
                figures[name].append((median, p99, len(times) / sum(times)))
    baseline_rate = statistics.median(f[2] for f in figures[names[0]])
    print(f"{args.requests} publishes per run, median of {args.repeat} runs, one connection each")
    print(f"{'side':<24} {'median ms':>10} {'p99 ms':>8} {'req/s':>8} {'/ baseline':>11}")
    for name in names:
        median = statistics.median(f[0] for f in figures[name]) * 1000
        p99 = statistics.median(f[1] for f in figures[name]) * 1000
        rate = statistics.median(f[2] for f in figures[name])
        ratio = rate / baseline_rate
        print(f"{name:<24} {median:>10.2f} {p99:>8.2f} {rate:>8.0f} {ratio:>11.2f}")


if __name__ == "__main__":
    main()
