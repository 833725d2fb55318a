"""``moksha config``: the effective configuration and where each value came from."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from moksha.cli._common import CliState, common_options, pass_state, stdout_console
from moksha.config import Config

__all__ = ["config_command", "describe_config"]

DEFAULT = "default"


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object, for scripts.")
@common_options
@pass_state
@click.pass_context
def config_command(ctx: click.Context, state: CliState, as_json: bool) -> int:
    """Show the configuration in effect, with the source of each value set.

    Sources, lowest precedence first: built-in defaults, the INI file,
    MOKSHA_* environment variables. Secrets are shown as ***.
    """
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
