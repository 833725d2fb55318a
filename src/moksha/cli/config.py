"""``moksha config``: the effective configuration and where each value came from."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from moksha.cli._common import (
    CliState,
    common_options,
    pass_state,
    stderr_console,
    stdout_console,
)
from moksha.config import Config

__all__ = ["config_command", "describe_config"]

DEFAULT = "default"


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object, for scripts.")
@click.option(
    "--check",
    is_flag=True,
    help="Only check: exit 1 when a key looks like a misspelt Moksha key.",
)
@common_options
@pass_state
@click.pass_context
def config_command(ctx: click.Context, state: CliState, as_json: bool, check: bool) -> int:
    """Show the configuration in effect, with the source of each value set.

    Sources, lowest precedence first: built-in defaults, the INI file,
    MOKSHA_* environment variables. Secrets are shown as ***. A bad value or
    a line without '=' exits with 2; with --check, an unknown key close to a
    known one (amqp_brokr) exits with 1.
    """
    if check:
        return _check(state)
    state.start_logging(ctx)
    rows = describe_config(state.load_config())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    table = Table("key", "value", "source")
    for key, row in rows.items():
        source = row["source"]
        table.add_row(
            key,
            _shown(row["value"]),
            source,
            style="dim" if source == DEFAULT else None,
        )
    stdout_console().print(table)
    return 0


def _check(state: CliState) -> int:
    config = state.load_config()  # logging is not started: the problems are printed instead
    problems = config.misspellings()
    console = stderr_console()
    for problem in problems:
        console.print(f"moksha config: {problem}", markup=False)
    if problems:
        return 1
    console.print("moksha config: no problems found", markup=False)
    return 0


def describe_config(config: Config) -> dict[str, dict[str, Any]]:
    """Every key with its value (secrets masked) and its source.

    Args:
        config: the configuration to describe.

    Returns:
        ``{key: {"value": ..., "source": ...}}`` in the order of
        :meth:`Config.redacted`; source is ``"default"``, a file path,
        ``"environment MOKSHA_X"`` or ``"code"``.
    """
    return {
        key: {"value": _jsonable(value), "source": config.source(key)}
        for key, value in config.redacted().items()
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
