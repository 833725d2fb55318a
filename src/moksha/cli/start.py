"""``moksha start``: the hub, the live socket and the web site in one process, on one port.

The hub runs the installed consumers and producers and, unless
``moksha.dashboard.demo = false``, the demo producers that feed the default
dashboard.  The live socket is served on the web port, not on a port of its
own, so ``moksha.livesocket.backend`` is ignored here.  Ctrl-C or SIGTERM
stops it: the port stops accepting at once (``/ready`` turns not ready on
connections already open), the live socket's clients are drained (their
queued frames, then close 1012, so they reconnect to another node; at most
``moksha.shutdown_timeout``), then the web server stops (at most two seconds
for open requests), then the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket

import click

from moksha.archive.recovery import archive_history
from moksha.cli._common import CliState, common_options, logging_level, pass_state, run_async
from moksha.cluster.attachment import hub_cluster
from moksha.config import Config
from moksha.errors import ConfigError
from moksha.hub import CentralMokshaHub
from moksha.hub.api import Producer
from moksha.hub.validation import checked_plugins
from moksha.livesocket import LiveSocket, LiveSocketServer, listen
from moksha.livesocket.attachment import stop_serving
from moksha.monitoring import Monitor, MonitoringApp
from moksha.plugins import PRODUCER_GROUPS
from moksha.web import WebSettings, create_app

__all__ = ["demo_producers", "start_command"]

log = logging.getLogger("moksha.start")


@click.command("start")
@click.argument("config_file", metavar="[CONFIG]", required=False)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port for the pages and the live socket (0: any free port).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only.")
@common_options
@pass_state
@click.pass_context
def start_command(
    ctx: click.Context,
    state: CliState,
    config_file: str | None,
    host: str,
    port: int,
    verbose: bool,
    quiet: bool,
) -> int:
    """Run Moksha: the hub, the live socket and the dashboard at http://HOST:PORT/.

    CONFIG is the INI file to read (it takes precedence over -c); without one,
    ./development.ini, ./production.ini or /etc/moksha/*.ini is used, or the
    built-in defaults: an in-memory bus inside this process.
    """
    level = logging_level(verbose, quiet)
    config = state.load_config(config_file)
    state.start_logging(ctx, level, config)
    if config.livesocket_backend is not None:
        log.info("moksha start serves the live socket on its web port; its own port is not used")
        config = config.with_overrides({"moksha.livesocket.backend": None})
    settings = WebSettings.from_config(config)
    sock = _listen(host, port)
    try:
        run_async(_serve(config, settings, sock))
    finally:
        sock.close()
    click.echo("moksha stopped", err=True)
    return 0


def _listen(host: str, port: int) -> socket.socket:
    try:
        return listen(host, port)
    except ConfigError as exc:
        cause = exc.__cause__
        reason = getattr(cause, "strerror", None) or str(cause or exc)
        reason = reason.split(" (while attempting")[0]  # socket.create_server's addition
        if getattr(cause, "errno", None) == errno.EADDRINUSE:
            fix = "choose another port with --port, or stop what uses it"
        else:
            fix = "check --host (an address of this machine) and --port"
        raise ConfigError(f"cannot listen on {host}:{port} ({reason}); {fix}") from None


def demo_producers(settings: WebSettings) -> list[type[Producer]]:
    """The demo producers ``moksha start`` adds, when ``moksha.dashboard.demo`` is on."""
    if not settings.dashboard_demo:
        return []
    try:
        from moksha.widgets.demo import Counter, SystemStats
    except ImportError as exc:
        log.warning("the demo producers are not available: %s", exc)
        return []
    return [SystemStats, Counter]


async def _serve(config: Config, settings: WebSettings, sock: socket.socket) -> None:
    # Entry points that cannot run are logged and left out, not passed to the hub.
    producers = [cls for cls, _ in checked_plugins(PRODUCER_GROUPS)]
    producers += [cls for cls in demo_producers(settings) if cls not in producers]
    # Created inside the running loop, the hub runs on it (no background thread).
    hub = CentralMokshaHub(config, producers=producers)
    await hub.start()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(hub.aclose)
        cluster = hub_cluster(hub)
        history = archive_history(config, cluster=cluster)
        live = LiveSocket(hub, config, history=history, cluster=cluster)
        await live.start()
        stack.push_async_callback(live.aclose)
        app = create_app(hub, config, live=live)
        stack.push_async_callback(app.aclose)
        monitor = await stack.enter_async_context(Monitor(hub, live=live))
        # /metrics, /live and /ready, outside the dashboard's authorization.
        site = MonitoringApp(app, monitor)
        server = LiveSocketServer(site, sock, live.policy.max_frame_bytes)
        await _run_until_signalled(server, live, config.shutdown_timeout)


async def _run_until_signalled(server: LiveSocketServer, live: LiveSocket, drain: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve(), name="moksha web server")
    stopping = asyncio.create_task(stop.wait(), name="moksha stop signal")
    try:
        click.echo(f"Moksha is running at {server.url}/ (Ctrl-C to stop)", err=True)
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        stopping.cancel()
        # Refusing new clients, then ending the live socket's (after what is queued for
        # them, with 1012 "service restart" so they reconnect, to another node if there
        # is one) ends their SSE streams and WebSocket writers: the server need not wait.
        await stop_serving(server, serving, live, drain)
