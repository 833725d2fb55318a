"""``moksha list``: every installed plugin, what it listens to, and who provides it."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from moksha.cli._common import CliState, common_options, pass_state, stdout_console
from moksha.plugins import LISTED_GROUPS, Plugin, iter_plugins

__all__ = ["describe", "list_command"]


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, for scripts.")
@common_options
@pass_state
@click.pass_context
def list_command(ctx: click.Context, state: CliState, as_json: bool) -> int:
    """List the installed consumers, producers, widgets, apps and backends.

    Plugins are found on the moksha.* entry-point groups; one that fails to
    import is listed with its error.
    """
    state.start_logging(ctx)
    rows = [describe(plugin) for plugin in iter_plugins(LISTED_GROUPS)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        stdout_console().print(_table(rows))
    return 0


def describe(plugin: Plugin) -> dict[str, Any]:
    """One plugin as a JSON-ready dict.

    Args:
        plugin: as :func:`moksha.plugins.iter_plugins` yields it.

    Returns:
        ``kind`` (consumer, producer, stream, ...), ``group``, ``name``,
        ``object`` (``module:Class``), ``topics`` (list), ``distribution``
        (``"name version"`` or None) and ``error`` (None when it loaded).
    """
    obj = plugin.obj
    if plugin.error is None and hasattr(obj, "__module__") and hasattr(obj, "__qualname__"):
        target = f"{obj.__module__}:{obj.__qualname__}"
    else:
        target = plugin.value
    return {
        "kind": plugin.group.removeprefix("moksha."),
        "group": plugin.group,
        "name": plugin.name,
        "object": target,
        "topics": _topics(obj),
        "distribution": plugin.distribution,
        "error": plugin.error,
    }


def _topics(obj: Any) -> list[str]:
    # A class attribute only: a consumer that sets its topic in __init__ shows none.
    topic = getattr(obj, "topic", None)
    if isinstance(topic, str):
        return [topic] if topic else []
    if isinstance(topic, list | tuple):
        return [item for item in topic if isinstance(item, str) and item]
    return []


def _table(rows: list[dict[str, Any]]) -> Table | Text:
    if not rows:
        return Text("No Moksha plugins are installed.")
    table = Table("kind", "name", "object", "topics", "distribution")
    for row in rows:
        target = Text(row["object"])
        if row["error"]:
            target.append("\n" + row["error"], style="red")
        table.add_row(
            row["kind"], row["name"], target, ", ".join(row["topics"]), row["distribution"] or ""
        )
    return table
