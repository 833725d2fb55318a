"""``moksha hub`` (and ``moksha-hub``): run the consumers and producers until stopped."""

from __future__ import annotations

import click

from moksha import __version__
from moksha.cli._common import CliState, common_options, logging_level, pass_state, run_async
from moksha.config import Config
from moksha.hub import CentralMokshaHub
from moksha.monitoring import Monitor, monitoring_routes

__all__ = ["banner", "hub_command"]


@click.command("hub")
@click.argument("config_file", metavar="[CONFIG]", required=False)
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only.")
@common_options
@pass_state
@click.pass_context
def hub_command(
    ctx: click.Context, state: CliState, config_file: str | None, verbose: bool, quiet: bool
) -> int:
    """Run the hub: every installed consumer and producer, until Ctrl-C or SIGTERM.

    CONFIG is the INI file to read (it takes precedence over -c); without one,
    ./development.ini, ./production.ini or /etc/moksha/*.ini is used, or the
    built-in defaults: an in-memory bus inside this process.
    """
    level = logging_level(verbose, quiet)
    config = state.load_config(config_file)
    state.start_logging(ctx, level, config)
    run_async(_serve(config))
    click.echo("moksha hub stopped", err=True)
    return 0


async def _serve(config: Config) -> None:
    # Created inside the running loop, the hub runs on it (no background thread).
    hub = CentralMokshaHub(config)
    async with Monitor(hub) as monitor:
        # /metrics, /live, /ready and the status on the live socket's port, when it is on.
        hub.livesocket_routes += monitoring_routes(monitor, status=True)
        await hub.serve(on_started=lambda: click.echo(banner(hub), err=True))


def banner(hub: CentralMokshaHub) -> str:
    """What a started hub runs, for the person who started it.

    Args:
        hub: a started hub.

    Returns:
        Several lines: the backends, each consumer with its topics, each producer,
        and the live socket's URL when it is on.
    """
    lines = [f"moksha hub {__version__}"]
    lines.append("  backends: " + ", ".join(backend.name for backend in hub.backends))
    for consumer in hub.consumers:
        topics = ", ".join(consumer.topics) or "(no topic)"
        lines.append(f"  consumer {_qualified(consumer)} on {topics}")
    for producer in hub.producers:
        lines.append(f"  producer {_qualified(producer)}")
    if not hub.consumers and not hub.producers:
        lines.append("  no consumers or producers are installed (see `moksha list`)")
    if hub.livesocket_url is not None:
        url = hub.livesocket_url
        lines.append(f"  live socket: {url} (watch it: moksha tail '#' --hub {url})")
    lines.append("Ctrl-C to stop")
    return "\n".join(lines)


def _qualified(plugin: object) -> str:
    cls = type(plugin)
    return f"{cls.__module__}:{cls.__qualname__}"
