"""``moksha list``: every installed plugin, what it listens to, and who provides it.

Consumers and producers get the checks the hub makes before running them
(:mod:`moksha.hub.validation`): an entry point the hub would skip is listed as
broken with the same sentence the hub logs, and the command exits with 1.
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from moksha.cli._common import CliState, common_options, pass_state, stdout_console
from moksha.hub.validation import plugin_problem
from moksha.plugins import LISTED_GROUPS, Plugin, iter_plugins

__all__ = ["describe", "list_command"]


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, for scripts.")
@common_options
@pass_state
@click.pass_context
def list_command(ctx: click.Context, state: CliState, as_json: bool) -> int:
    """List the installed consumers, producers, widgets, apps, backends and attachments.

    Plugins are found on the moksha.* entry-point groups.  One the hub could
    not run (it fails to import, has the wrong base class, no topic, no
    frequency...) is listed as broken with what to fix, and the exit status is 1.
    """
    state.start_logging(ctx)
    rows = [describe(plugin) for plugin in iter_plugins(LISTED_GROUPS)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        console = stdout_console()
        console.print(_table(rows))
        for row in rows:
            if row["error"]:
                console.print(Text(f"broken: {row['error']}", style="red"), soft_wrap=True)
    return 1 if any(row["error"] for row in rows) else 0


def describe(plugin: Plugin) -> dict[str, Any]:
    """One plugin as a JSON-ready dict.

    Args:
        plugin: as :func:`moksha.plugins.iter_plugins` yields it.

    Returns:
        ``kind`` (consumer, producer, stream, ...), ``group``, ``name``,
        ``object`` (``module:Class``), ``entry_point`` (``group: name = value``, as
        the distribution declares it), ``topics`` (list), ``distribution``
        (``"name version"`` or None) and ``error``: None when the hub can run it,
        else the sentence the hub logs when it skips it.
    """
    obj = plugin.obj
    if plugin.error is None and hasattr(obj, "__module__") and hasattr(obj, "__qualname__"):
        target = f"{obj.__module__}:{obj.__qualname__}"
    else:
        target = plugin.value
    return {
        "kind": plugin.group.removeprefix("moksha.").removeprefix("hub."),
        "group": plugin.group,
        "name": plugin.name,
        "object": target,
        "entry_point": f"{plugin.group}: {plugin.name} = {plugin.value}",
        "topics": _topics(obj),
        "distribution": plugin.distribution,
        "error": plugin_problem(plugin),
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
    table = Table("kind", "name", "object", "topics", "distribution", "status")
    for row in rows:
        status = Text("broken", style="red") if row["error"] else Text("ok")
        table.add_row(
            row["kind"],
            row["name"],
            row["object"],
            ", ".join(row["topics"]),
            row["distribution"] or "",
            status,
        )
    return table
