"""One object that watches a hub: totals, ``/metrics``, ``/live``, ``/ready``, the socket.

::

    hub = CentralMokshaHub(config)
    async with Monitor(hub) as monitor:            # binds moksha.monitoring.socket, if set
        app = MonitoringApp(my_asgi_app, monitor)  # adds /metrics, /live and /ready
        await hub.serve()

The monitor reads the hub every second (:data:`SAMPLE_INTERVAL_S`) so that its
totals miss nothing between two scrapes, and every ``moksha.monitoring.interval``
seconds publishes on the monitoring socket when one is configured.  It never
touches the message path: a hub without a monitor runs exactly as fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from moksha.config import Config
from moksha.monitoring.health import Readiness, readiness
from moksha.monitoring.metrics import HubCollector, exposition, hub_registry
from moksha.monitoring.socket import MonitoringSocket
from moksha.monitoring.tally import HubTally

if TYPE_CHECKING:
    from moksha.hub.hub import MokshaHub
    from moksha.livesocket import LiveSocket

__all__ = [
    "LIVE_PATH",
    "METRICS_PATH",
    "READY_PATH",
    "SAMPLE_INTERVAL_S",
    "Monitor",
    "MonitoringApp",
    "monitoring_routes",
]

log = logging.getLogger("moksha.monitoring")

METRICS_PATH = "/metrics"
LIVE_PATH = "/live"
READY_PATH = "/ready"
STATUS_PATH = "/_moksha/hub/status"
"""Where the dashboard serves the hub status (``moksha.widgets.builtin.STATUS_PATH``)."""
SAMPLE_INTERVAL_S = 1.0
"""How often the monitor reads the hub (reconnections shorter than this go unseen)."""


class Monitor:
    """Watches ``hub``: Prometheus metrics, health, and the original's monitoring socket.

    Use it as an async context manager (or :meth:`start` / :meth:`aclose`), on
    the event loop that serves its routes.  It may be started before the hub.

    Args:
        hub: the hub to watch.
        live: the live socket to report on; by default the hub's own, if any.
        config: supplies ``moksha.monitoring.*`` (default: the hub's).

    Raises:
        ConfigError: a ``moksha.monitoring`` setting is wrong.

    Attributes:
        tally: the hub's totals since the monitor started.
        registry: the Prometheus registry ``/metrics`` exposes.
        socket: the monitoring socket, when ``moksha.monitoring.socket`` is set.
        interval: seconds between two publications on the socket.
    """

    def __init__(
        self,
        hub: MokshaHub,
        *,
        live: LiveSocket | None = None,
        config: Config | None = None,
    ) -> None:
        config = config if config is not None else hub.config
        self.hub = hub
        self._live = live
        self.interval = config.monitoring_interval
        self.socket = MonitoringSocket.from_config(config)
        self.tally = HubTally(hub)
        self.registry = hub_registry(HubCollector(self.tally, self.livesocket, self.ready))
        self._task: asyncio.Task[None] | None = None

    def livesocket(self) -> LiveSocket | None:
        """The live socket reported on: the one given, else the hub's own (once started)."""
        if self._live is not None:
            return self._live
        live: LiveSocket | None = getattr(self.hub, "livesocket", None)
        return live

    def readiness(self) -> Readiness:
        """The hub's readiness now (see :mod:`moksha.monitoring.health`)."""
        live = self.livesocket()
        return readiness(self.hub, draining=live is not None and live.draining)

    def ready(self) -> bool:
        """Whether the hub is ready now."""
        return self.readiness().ready

    def report(self) -> dict[str, Any]:
        """What the monitoring socket publishes: every consumer's and producer's ``__json__()``.

        As in the original Moksha, this resets the consumers' counters (the
        monitor's totals keep counting).  A plugin whose ``__json__`` fails is
        left out of its list and named under ``"unreadable"`` with the error.
        """
        consumers = [self.tally.report(c) for c in getattr(self.hub, "consumers", ())]
        producers = [self.tally.producer_report(p) for p in getattr(self.hub, "producers", ())]
        report: dict[str, Any] = {
            "consumers": [data for data in consumers if data is not None],
            "producers": [data for data in producers if data is not None],
        }
        if unreadable := self.tally.unreadable():
            report["unreadable"] = unreadable
        return report

    def metrics(self, accept: str | None = None) -> tuple[bytes, str]:
        """The Prometheus exposition, and its content type (OpenMetrics if ``accept`` asks)."""
        return exposition(self.registry, accept)

    async def start(self) -> None:
        """Bind the monitoring socket (when configured) and start reading the hub.

        Raises:
            ConfigError: the socket cannot be bound.
        """
        if self._task is not None:
            return
        if self.socket is not None:
            self.socket.bind()
        self._task = asyncio.create_task(self._run(), name="moksha monitor")

    async def aclose(self) -> None:
        """Stop reading the hub and close the socket.  Closing twice is harmless."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.socket is not None:
            self.socket.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._every(SAMPLE_INTERVAL_S, self.tally.sample, "read the hub"))
            if self.socket is not None:
                tasks.create_task(self._every(self.interval, self._publish, "publish statistics"))

    def _publish(self) -> None:
        assert self.socket is not None
        self.socket.send(self.report())

    @staticmethod
    async def _every(seconds: float, work: Callable[[], None], what: str) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                work()
            except Exception:
                # A plugin's __json__ or stats may raise; the next round tries again.
                log.exception("monitoring: could not %s", what)

    def routes(self, *, status: bool = False) -> list[BaseRoute]:
        """``/metrics``, ``/live`` and ``/ready`` (see :func:`monitoring_routes`)."""
        return monitoring_routes(self, status=status)


def monitoring_routes(monitor: Monitor, *, status: bool = False) -> list[BaseRoute]:
    """The monitoring endpoints, as Starlette routes.

    =====================  ==================================================
    ``GET /metrics``       Prometheus metrics (text format, or OpenMetrics)
    ``GET /live``          200 while the process answers
    ``GET /ready``         200 when ready, else 503 and the reasons, as JSON
    ``GET /_moksha/hub/status``  with ``status=True``: the dashboard's hub status
    =====================  ==================================================

    Args:
        monitor: the hub's monitor.
        status: also serve the hub status (for a port without the dashboard,
            e.g. the hub's own live-socket port, so ``moksha monitor`` can read it).

    Returns:
        The routes, to put in a Starlette app or router.
    """

    async def metrics(request: Request) -> Response:
        body, content_type = monitor.metrics(request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})

    async def live(_request: Request) -> Response:
        return JSONResponse({"live": True, "state": monitor.hub.state.value})

    async def ready(_request: Request) -> Response:
        verdict = monitor.readiness()
        return JSONResponse(
            verdict.as_json(),
            status_code=200 if verdict.ready else 503,
            headers={"Cache-Control": "no-store"},
        )

    routes: list[BaseRoute] = [
        Route(METRICS_PATH, metrics, methods=["GET"]),
        Route(LIVE_PATH, live, methods=["GET"]),
        Route(READY_PATH, ready, methods=["GET"]),
    ]
    if status:
        from moksha.widgets.status import hub_status

        async def hub_status_json(_request: Request) -> Response:
            body = hub_status(monitor.hub, monitor.livesocket())
            return JSONResponse(body, headers={"Cache-Control": "no-store"})

        routes.append(Route(STATUS_PATH, hub_status_json, methods=["GET"]))
    return routes


class MonitoringApp:
    """An ASGI app answering the monitoring endpoints, and passing the rest to ``app``.

    Args:
        app: the app to wrap (the site, the live socket's app).
        monitor: the hub's monitor.
        status: as for :func:`monitoring_routes`.
    """

    def __init__(self, app: ASGIApp, monitor: Monitor, *, status: bool = False) -> None:
        self.app = app
        self.monitor = monitor
        self.routes = monitoring_routes(monitor, status=status)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await self.app(scope, receive, send)
