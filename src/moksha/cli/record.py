"""``moksha record`` and ``moksha replay FILE``: messages to and from a file, as fedora-messaging.

The file holds one JSON object a line, the format of ``fedora-messaging
record`` and ``fedora-messaging publish FILE`` (see
:mod:`moksha.schema.recording`), so a recording moves between the two tools.
Both commands use the brokers the configuration names, as any
:class:`~moksha.hub.MokshaHub` client would.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

import click

from moksha.cli._common import CliState, common_options, pass_state, run_async
from moksha.config import Config
from moksha.hub import MokshaHub
from moksha.message import Message
from moksha.schema.recording import read_records, record_line

__all__ = ["record_command", "replay_file"]


@click.command("record")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.argument("patterns", nargs=-1, metavar="[PATTERN]...")
@click.option("--count", type=click.IntRange(min=1), metavar="N", help="Stop after N messages.")
@common_options
@pass_state
@click.pass_context
def record_command(
    ctx: click.Context, state: CliState, file: Path, patterns: tuple[str, ...], count: int | None
) -> int:
    """Append the messages on PATTERN (default '#': all) to FILE, one JSON line each.

    Runs until Ctrl-C, or until --count messages were recorded.
    """
    state.start_logging(ctx)
    config = state.load_config()
    with file.open("a", encoding="utf-8") as out:
        recorded = run_async(_record(config, out, list(patterns) or ["#"], count))
    click.echo(f"recorded {recorded} message(s) in {file}", err=True)
    return 0


async def _record(config: Config, out: TextIO, patterns: list[str], count: int | None) -> int:
    enough = asyncio.Event()
    recorded = 0
    async with MokshaHub(config) as hub:

        def write(message: Message) -> None:
            nonlocal recorded
            if enough.is_set():
                return
            out.write(record_line(message, hub.schemas.registry) + "\n")
            out.flush()
            recorded += 1
            if count is not None and recorded >= count:
                enough.set()

        for pattern in patterns:
            await hub.asubscribe(pattern, write)
        click.echo(f"recording {', '.join(patterns)} (Ctrl-C stops)", err=True)
        await enough.wait()  # Ctrl-C ends it too: each line is flushed once written
    return recorded


def replay_file(state: CliState, file: TextIO) -> int:
    """``moksha replay FILE``: publish every message of a record file again, ids and headers kept.

    Each one is checked against its schema first: a message that fails stops the
    replay there (what came before it was sent).
    """
    config = state.load_config()
    name = "stdin" if file is sys.stdin else file.name
    sent = run_async(_replay(config, read_records(file, name)))
    click.echo(f"replayed {sent} message(s)", err=True)
    return 0


async def _replay(config: Config, messages: Iterable[Message]) -> int:
    sent = 0
    async with MokshaHub(config) as hub:
        for message in messages:
            if hub.schemas.active:
                message = hub.schemas.outgoing(message)
            for backend in hub.backends:
                await backend.publish(message)
            sent += 1
    return sent
