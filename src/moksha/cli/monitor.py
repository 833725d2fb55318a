"""``moksha monitor``: a live view of a running hub's consumers, producers, rates and errors.

It reads one of two sources:

* a hub's status (``GET /_moksha/hub/status``, what the dashboard's panel
  reads): ``--hub URL``, or a hub found on the default local ports;
* the monitoring socket (``moksha.monitoring.socket``, a ZeroMQ PUB socket
  the hub publishes on every ``moksha.monitoring.interval`` seconds):
  ``--socket ENDPOINT``, or the configured one when no hub answers HTTP.

The view refreshes in place until Ctrl-C; ``--once`` prints one snapshot and
exits (reading a hub's status twice, ``--interval`` apart, to show rates).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import time
from collections.abc import AsyncGenerator

import click
import httpx
import zmq
import zmq.asyncio
from rich.live import Live
from rich.text import Text

from moksha.cli._common import CliState, common_options, pass_state, run_async, stdout_console
from moksha.cli.remote import find_hub, hub_option, is_loopback, no_hub_found, unreachable
from moksha.errors import BackendError, BackendUnavailable
from moksha.monitoring.monitor import STATUS_PATH
from moksha.monitoring.view import Snapshot, from_report, from_status, render, with_rates

__all__ = ["monitor_command"]

HTTP_TIMEOUT_S = 5.0
# A socket report comes every interval; allow for one missed (a subscriber's first) and slack.
SOCKET_PATIENCE = 2.0
SOCKET_SLACK_S = 2.0


@click.command("monitor")
@hub_option
@click.option(
    "--socket",
    "endpoint",
    metavar="ENDPOINT",
    help="Read the monitoring socket instead, e.g. ipc:///run/moksha/monitor.sock "
    "(the hub's moksha.monitoring.socket).",
)
@click.option("--once", is_flag=True, help="Print one snapshot and exit.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between two reads of the hub's status.",
)
@common_options
@pass_state
@click.pass_context
def monitor_command(
    ctx: click.Context,
    state: CliState,
    hub_url: str | None,
    endpoint: str | None,
    once: bool,
    interval: float,
) -> int:
    """Show a running hub's consumers, producers, rates, backlogs and errors, live.

    With --hub URL (or $MOKSHA_HUB_URL) it reads that hub's status; with
    --socket ENDPOINT the monitoring socket a hub publishes on; with neither,
    a hub on the default local ports, else the moksha.monitoring.socket of
    the configuration.
    """
    if hub_url and endpoint:
        raise click.UsageError("give --hub or --socket, not both.")
    state.start_logging(ctx)
    config = state.load_config()
    if not hub_url and not endpoint:
        hub_url = run_async(find_hub(config))
        endpoint = None if hub_url else config.monitoring_socket
        if not hub_url and not endpoint:
            raise BackendUnavailable(
                no_hub_found(config) + ", or --socket ENDPOINT for a hub's monitoring socket"
            )
    if hub_url:
        source, snapshots = hub_url, _status_snapshots(hub_url, interval, pairs=once)
    elif endpoint:
        source, snapshots = endpoint, _socket_snapshots(endpoint, config.monitoring_interval)
    try:
        run_async(_show(snapshots, once=once, source=source))
    except KeyboardInterrupt:
        return 0
    return 0


async def _show(snapshots: AsyncGenerator[Snapshot], *, once: bool, source: str) -> None:
    """Print the first snapshot (``once``), or keep a live view of every snapshot."""
    console = stdout_console()
    async with contextlib.aclosing(snapshots):
        if once:
            console.print(render(await anext(snapshots)))
            return
        if not console.is_terminal:
            # Not a terminal: nothing to redraw; one snapshot after another, like `watch`.
            async for snapshot in snapshots:
                console.print(render(snapshot))
                console.print()
            return
        waiting = Text(f"Reading {source} ...", style="dim")
        with Live(waiting, console=console, auto_refresh=False) as live:
            async for snapshot in snapshots:
                live.update(render(snapshot), refresh=True)


async def _status_snapshots(url: str, interval: float, *, pairs: bool) -> AsyncGenerator[Snapshot]:
    """Snapshots of the hub status at ``url``, every ``interval`` seconds, with rates.

    With ``pairs``, the first snapshot yielded is the second read (so it has rates).

    Raises:
        BackendUnavailable: the hub does not answer (at the first read).
        BackendError: it answers something other than a hub status.
    """
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, trust_env=not is_loopback(url)) as client:
        previous = await _read_status(client, url)
        if not pairs:
            yield previous
        while True:
            await asyncio.sleep(interval)
            try:
                current = with_rates(await _read_status(client, url), previous)
            except BackendUnavailable as exc:
                if pairs:
                    raise
                # The hub went away: keep showing what it said last, and say so.
                yield _stale(previous, str(exc))
                continue
            yield current
            previous = current


def _stale(snapshot: Snapshot, why: str) -> Snapshot:
    since = snapshot.note or f"no answer since {time.strftime('%H:%M:%S')}: {why}"
    return dataclasses.replace(snapshot, note=since)


async def _read_status(client: httpx.AsyncClient, url: str) -> Snapshot:
    try:
        response = await client.get(url + STATUS_PATH)
    except httpx.ConnectError as exc:
        raise unreachable(url) from exc
    except httpx.TimeoutException as exc:
        raise BackendUnavailable(
            f"the hub at {url} did not answer within {HTTP_TIMEOUT_S:g} s"
        ) from exc
    except httpx.HTTPError as exc:
        raise BackendUnavailable(f"cannot reach the hub at {url}: {exc}") from exc
    if response.status_code == 404:
        raise BackendError(
            f"{url} serves no hub status (404 on {STATUS_PATH}): give the URL of `moksha start`, "
            "or read the hub's monitoring socket with --socket ENDPOINT"
        )
    if response.status_code in (401, 403):
        raise BackendError(
            f"the hub at {url} refused its status ({response.status_code}): the dashboard is "
            "protected (moksha.auth.allow.dashboard.main); read the monitoring socket instead"
        )
    try:
        return from_status(response.json(), url)
    except ValueError as exc:
        raise BackendError(
            f"{url}{STATUS_PATH} answered {response.status_code} with something other than a "
            f"Moksha hub status: {response.text[:200]!r}"
        ) from exc


async def _socket_snapshots(endpoint: str, interval: float) -> AsyncGenerator[Snapshot]:
    """Snapshots of what the hub publishes on its monitoring socket, with rates.

    Raises:
        BackendUnavailable: nothing arrives in time (no hub publishes there).
        BackendError: what arrives is not a monitoring report.
    """
    if endpoint.startswith("ipc://") and not endpoint.startswith("ipc://@"):
        path = endpoint.removeprefix("ipc://")
        if not os.path.exists(path):
            raise BackendUnavailable(
                f"no monitoring socket at {path}: is a hub running with "
                f"moksha.monitoring.socket = {endpoint}?"
            )
    patience = interval * SOCKET_PATIENCE + SOCKET_SLACK_S
    context = zmq.asyncio.Context()
    sock = context.socket(zmq.SUB)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.subscribe(b"")
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            raise BackendError(
                f"cannot connect to the monitoring socket {endpoint}: {exc}"
            ) from exc
        previous: Snapshot | None = None
        while True:
            try:
                async with asyncio.timeout(patience):
                    frame = await sock.recv()
            except TimeoutError:
                silence = (
                    f"nothing arrived on the monitoring socket {endpoint} in {patience:g} s: is a "
                    f"hub running with moksha.monitoring.socket = {endpoint} (and "
                    f"moksha.monitoring.interval = {interval:g})?"
                )
                if previous is None:
                    raise BackendUnavailable(silence) from None
                yield _stale(previous, silence)  # it went quiet: show what it said last
                continue
            try:
                snapshot = from_report(json.loads(frame), endpoint)
            except ValueError as exc:
                raise BackendError(
                    f"{endpoint} sent something other than a Moksha monitoring report: "
                    f"{frame[:200]!r}"
                ) from exc
            previous = with_rates(snapshot, previous, window=interval)
            yield previous
    finally:
        sock.close()
        context.term()
