"""``moksha dead list | requeue | purge``: the archive's dead letters from the shell."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table

from moksha.archive.dead import DeadFilter, count_dead, discard, list_dead, requeue
from moksha.archive.models import DEAD_STATES
from moksha.archive.query import SearchError, parse_time
from moksha.cli._common import (
    CliState,
    common_options,
    pass_state,
    run_async,
    stderr_console,
    stdout_console,
)
from moksha.cli._republish import publisher
from moksha.cli.archive import open_store
from moksha.cli.remote import hub_option

__all__ = ["dead_command"]


def dead_filters(command: Any) -> Any:
    for option in (
        click.option("--topic", help="Original topic or pattern (org.example.#)."),
        click.option("--error", help="Text the error contains."),
        click.option("--since", help="Dead-lettered from this time (epoch or ISO 8601)."),
        click.option("--until", help="Dead-lettered until this time."),
    ):
        command = option(command)
    return command


def _selection(
    options: dict[str, Any], ids: Sequence[str] = (), state: str | None = "dead"
) -> DeadFilter:
    try:
        since = parse_time(options["since"], "since") if options.get("since") else None
        until = parse_time(options["until"], "until") if options.get("until") else None
    except SearchError as exc:
        raise click.UsageError(str(exc)) from None
    return DeadFilter(options.get("topic"), options.get("error"), since, until, state, tuple(ids))


@click.group("dead")
def dead_command() -> None:
    """Dead letters: list them, requeue them on their topic, or purge (discard) them."""


@dead_command.command("list")
@dead_filters
@click.option("--state", type=click.Choice(DEAD_STATES), default="dead", show_default=True)
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@common_options
@pass_state
@click.pass_context
def list_command(
    ctx: click.Context, state: CliState, /, as_json: bool, limit: int, **options: Any
) -> int:
    """List dead letters, newest first."""
    state.start_logging(ctx)
    selection = _selection(options, state=options.pop("state"))
    store = open_store(state.load_config())
    try:
        with store.engine.connect() as connection:
            rows = list_dead(connection, selection, limit=limit)
            total = count_dead(connection, selection)
    finally:
        store.close()
    if as_json:
        for row in rows:
            shown = {k: row[k] for k in ("msg_id", "original_topic", "error", "attempts", "state")}
            shown["timestamp"] = row["timestamp"].isoformat()
            click.echo(json.dumps({**shown, "requeued_as": row["requeued_as"]}))
    else:
        table = Table("dead-lettered", "topic", "error", "attempts", "state", "id", box=None)
        for row in rows:
            table.add_row(
                row["timestamp"].isoformat(timespec="seconds"),
                row["original_topic"],
                row["error"],
                str(row["attempts"]),
                row["state"],
                row["msg_id"],
            )
        stdout_console().print(table)
    stderr_console().print(f"{len(rows)} of {total} dead letters", markup=False)
    return 0


def _chosen(ids: Sequence[str], every: bool, options: dict[str, Any]) -> DeadFilter:
    filtered = any(options.get(name) for name in ("topic", "error", "since", "until"))
    if not ids and not every:
        raise click.UsageError("name dead letters by id, or give --all (with filters or not)")
    if ids and (every or filtered):
        raise click.UsageError("give ids, or --all with filters; not both")
    return _selection(options, ids)


@dead_command.command("requeue")
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every waiting dead letter the filters match.")
@dead_filters
@hub_option
@common_options
@pass_state
@click.pass_context
def requeue_command(
    ctx: click.Context,
    state: CliState,
    /,
    ids: Sequence[str],
    every: bool,
    hub_url: str | None,
    **options: Any,
) -> int:
    """Republish dead letters on their original topic (each at most once; recorded)."""
    state.start_logging(ctx)
    selection = _chosen(ids, every, options)
    config = state.load_config()
    store = open_store(config)

    async def run() -> list[Any]:
        async with publisher(config, hub_url) as publish:
            return await requeue(store.engine, selection, publish, by=_who())

    try:
        results = run_async(run())
    finally:
        store.close()
    for result in results:
        click.echo(f"{result.dead_id} on {result.topic}: {result.note}")
    failed = sum(1 for result in results if result.message is None)
    stderr_console().print(
        f"{len(results) - failed} requeued, {failed} failed"
        + ("" if results else " (nothing waiting matches; requeued ones are not sent twice)"),
        markup=False,
    )
    return 1 if failed else 0


@dead_command.command("purge")
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every waiting dead letter the filters match.")
@dead_filters
@common_options
@pass_state
@click.pass_context
def purge_command(
    ctx: click.Context, state: CliState, /, ids: Sequence[str], every: bool, **options: Any
) -> int:
    """Discard dead letters: they stay in the archive, marked discarded, and leave the list."""
    state.start_logging(ctx)
    selection = _chosen(ids, every, options)
    store = open_store(state.load_config())
    try:
        count = discard(store.engine, selection, by=_who())
    finally:
        store.close()
    click.echo(f"{count} dead letter{'' if count == 1 else 's'} discarded")
    return 0


def _who() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "shell"
