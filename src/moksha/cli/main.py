"""The ``moksha`` command group, and how a run ends: an exit code, never a stray traceback.

Exit codes: 0 success; 1 a failure (a broker that cannot be reached, a plugin
that cannot load); 2 a usage or configuration error, which the user fixes by
changing the command line or the config file.  Errors are printed as one
sentence; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import traceback

import click
from rich.text import Text

from moksha import __version__
from moksha.cli._common import CliState, common_options, stderr_console
from moksha.cli.archive import archive_command, replay_command
from moksha.cli.config import config_command
from moksha.cli.dead import dead_command
from moksha.cli.feeds import feeds_command
from moksha.cli.hub import hub_command
from moksha.cli.monitor import monitor_command
from moksha.cli.plugins import list_command
from moksha.cli.queues import queues_command
from moksha.cli.quickstart import quickstart_command
from moksha.cli.send import send_command
from moksha.cli.start import start_command
from moksha.cli.tail import tail_command
from moksha.errors import ConfigError, MokshaError

__all__ = ["cli", "hub_main", "main"]

EXIT_FAILURE = 1
EXIT_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="moksha", message="%(prog)s %(version)s")
@common_options
def cli() -> None:
    """Moksha: run a hub that routes messages between brokers, plugins and browsers."""


cli.add_command(hub_command)
cli.add_command(list_command)
cli.add_command(send_command)
cli.add_command(tail_command)
cli.add_command(monitor_command)
cli.add_command(config_command)
cli.add_command(feeds_command)
cli.add_command(start_command)
cli.add_command(quickstart_command)
cli.add_command(queues_command)
cli.add_command(archive_command)
cli.add_command(replay_command)
cli.add_command(dead_command)


def main(argv: list[str] | None = None) -> int:
    """Run ``moksha`` with ``argv`` (default: the process arguments).

    Args:
        argv: the arguments after the program name.

    Returns:
        The exit code: 0 success, 1 failure, 2 usage or configuration error.
    """
    return _run(cli, argv, "moksha")


def hub_main(argv: list[str] | None = None) -> int:
    """Run ``moksha-hub``: the same as ``moksha hub``.

    Args:
        argv: the arguments after the program name.

    Returns:
        The exit code, as for :func:`main`.
    """
    return _run(hub_command, argv, "moksha-hub")


def _run(command: click.Command, argv: list[str] | None, prog_name: str) -> int:
    state = CliState()
    try:
        result = command.main(argv, prog_name=prog_name, standalone_mode=False, obj=state)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        stderr_console().print("Aborted.")
        return EXIT_FAILURE
    except ConfigError as exc:
        _report(exc, state)
        return EXIT_USAGE
    except MokshaError as exc:
        _report(exc, state)
        return EXIT_FAILURE
    return result if isinstance(result, int) else 0


def _report(exc: MokshaError, state: CliState) -> None:
    if state.debug:
        traceback.print_exception(exc)
    stderr_console().print(Text(f"Error: {exc}", style="red"))
