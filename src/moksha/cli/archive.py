"""``moksha archive search`` and ``moksha replay``: the archive from the shell.

Both read the archive ``moksha.archive.url`` names (the same database
``moksha start`` records into) and take datagrepper's filters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from moksha.archive.query import Search, SearchError, archived_message, find_message, search
from moksha.archive.replay import archived_rows, replayed_message
from moksha.archive.store import ArchiveStore
from moksha.cli._common import (
    CliState,
    common_options,
    pass_state,
    run_async,
    stderr_console,
    stdout_console,
)
from moksha.cli._republish import publisher
from moksha.cli.remote import hub_option
from moksha.config import Config
from moksha.errors import ConfigError

__all__ = ["archive_command", "replay_command"]

PROGRESS_FROM = 100
"""Replays of this many messages or more show a progress bar."""

_FILTERS = ("topic", "category", "user", "package", "agent", "contains")


def filter_options(command: Any) -> Any:
    """datagrepper's repeatable filters and their --not- forms."""
    for name in reversed(_FILTERS):
        command = click.option(
            f"--not-{name}", f"not_{name}", multiple=True, help=f"Leave out this {name}."
        )(command)
        command = click.option(
            f"--{name}", name, multiple=True, help=f"Only this {name} (repeat: any of them)."
        )(command)
    return command


def _search_of(options: dict[str, Any], **more: str | None) -> Search:
    params: dict[str, list[str]] = {}
    for prefix in ("", "not_"):
        for name in _FILTERS:
            values = options.get(prefix + name) or ()
            if values:
                params[prefix + name] = list(values)
    for name, value in more.items():
        if value is not None:
            params[name] = [value]
    try:
        return Search.from_params(params)
    except SearchError as exc:
        raise click.UsageError(str(exc)) from None


def open_store(config: Config) -> ArchiveStore:
    if not config.archive and config.archive_url is None:
        raise ConfigError(
            "the archive is off; set moksha.archive = true (and moksha.archive.url) in the "
            "config file moksha start reads, and pass it with -c",
            key="moksha.archive",
        )
    return ArchiveStore.from_config(config)


@click.group("archive")
def archive_command() -> None:
    """Search the archive of recorded messages (moksha.archive = true)."""


@archive_command.command("search")
@filter_options
@click.option("--start", help="From this time (epoch seconds or ISO 8601).")
@click.option("--end", help="Until this time.")
@click.option("--delta", help="Seconds before --end (or after --start).")
@click.option("--rows", "rows", default="25", show_default=True, help="Messages per page (≤ 100).")
@click.option("--page", default="1", show_default=True, help="Page number.")
@click.option("--order", type=click.Choice(["asc", "desc"]), default="desc", show_default=True)
@click.option("--cursor", help="Continue after a page: the next_cursor it printed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@common_options
@pass_state
@click.pass_context
def search_command(ctx: click.Context, state: CliState, /, as_json: bool, **options: Any) -> int:
    """Find archived messages with datagrepper's filters; newest first."""
    state.start_logging(ctx)
    query = _search_of(
        options,
        start=options["start"],
        end=options["end"],
        delta=options["delta"],
        rows_per_page=options["rows"],
        page=options["page"],
        order=options["order"],
        cursor=options["cursor"],
    )
    store = open_store(state.load_config())
    try:
        with store.engine.connect() as connection:
            try:
                page = search(connection, query)
            except SearchError as exc:
                raise click.UsageError(str(exc)) from None
    finally:
        store.close()
    if as_json:
        for row in page.rows:
            click.echo(json.dumps(archived_message(row), ensure_ascii=False))
    else:
        table = Table("sent", "topic", "id", box=None)
        for row in page.rows:
            table.add_row(
                row["timestamp"].isoformat(timespec="seconds"), row["topic"], row["msg_id"]
            )
        stdout_console().print(table)
    note = f"{len(page.rows)} of {page.total} (page {query.page} of {max(page.pages, 1)})"
    if page.next_cursor:
        note += f"; more with --cursor {page.next_cursor}"
    stderr_console().print(note, markup=False)
    return 0


@click.command("replay")
@click.option("--topic", "topics", multiple=True, help="Topic or pattern to replay (repeatable).")
@click.option("--since", help="From this time (epoch seconds or ISO 8601).")
@click.option("--until", help="Until this time.")
@click.option("--id", "ids", multiple=True, help="Replay this message (repeatable).")
@click.option("--to-topic", help="Publish there instead ({topic}: the original topic).")
@click.option("--dry-run", is_flag=True, help="List what would be replayed; publish nothing.")
@hub_option
@common_options
@pass_state
@click.pass_context
def replay_command(
    ctx: click.Context,
    state: CliState,
    topics: Sequence[str],
    since: str | None,
    until: str | None,
    ids: Sequence[str],
    to_topic: str | None,
    dry_run: bool,
    hub_url: str | None,
) -> int:
    """Republish archived messages in the order they were sent.

    Each goes out as a new message with the moksha-replayed header (the
    archived id): consumers can tell, and the archive does not store it again.
    """
    state.start_logging(ctx)
    if not (topics or since or until or ids):
        raise click.UsageError("say what to replay: --topic, --since/--until, or --id")
    config = state.load_config()
    store = open_store(config)
    try:
        if ids:
            with store.engine.connect() as connection:
                rows = [find_message(connection, msg_id) for msg_id in ids]
            missing = [msg_id for msg_id, row in zip(ids, rows, strict=True) if row is None]
            if missing:
                raise click.UsageError(f"the archive has no message {missing[0]!r}")
            total, found = len(rows), iter([row for row in rows if row is not None])
        else:
            query = _search_of({"topic": topics}, start=since, end=until)
            try:
                total, found = archived_rows(store.engine, query)
            except SearchError as exc:
                raise click.UsageError(str(exc)) from None
        if dry_run:
            for row in found:
                message = replayed_message(row, to_topic)
                click.echo(f"would replay {row['msg_id']} on {message.topic}")
            stderr_console().print(f"{total} messages would be replayed", markup=False)
            return 0
        sent = run_async(_replay(config, hub_url, total, found, to_topic))
    finally:
        store.close()
    stderr_console().print(f"replayed {sent} messages", markup=False)
    return 0


async def _replay(
    config: Config, hub_url: str | None, total: int, rows: Any, to_topic: str | None
) -> int:
    sent = 0
    columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(
        *columns, console=stderr_console(), disable=total < PROGRESS_FROM, transient=True
    ) as progress:
        task = progress.add_task("replaying", total=total)
        async with publisher(config, hub_url) as publish:
            for row in rows:
                await publish(replayed_message(row, to_topic))
                sent += 1
                progress.advance(task)
    return sent
