"""``moksha queues``: the durable queues Moksha keeps on each broker, and pruning orphans.

Each configured backend lists what it keeps for Moksha
(:meth:`~moksha.hub.backends.Backend.durable_queues`); a queue's owner is the
installed consumer class whose group it serves (``moksha.consumer`` entry
points), or "orphan" when no installed class does: a consumer renamed or
removed, whose queue may still fill.  ``moksha queues prune`` deletes orphans
after printing what each holds; it asks first (unless ``--yes``), never
deletes a queue a hub is consuming from, and never touches a queue Moksha did
not create (the backend refuses a name outside its records).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from moksha.cli._common import (
    CliState,
    common_options,
    pass_state,
    run_async,
    stderr_console,
    stdout_console,
)
from moksha.config import Config
from moksha.errors import MokshaError
from moksha.hub.backends import Backend, DurableQueue, select_backends
from moksha.hub.central import group_name
from moksha.plugins import CONSUMER_GROUPS, iter_plugins

__all__ = ["Owned", "Survey", "queues_command", "survey"]

ORPHAN = "orphan"


@dataclass(frozen=True, slots=True)
class Owned:
    """A durable queue, the backend keeping it, and the installed class that owns it.

    Attributes:
        backend: the backend's name (``amqp``, ...).
        queue: the queue and its state.
        owner: ``module:Class`` of the installed consumer, or None for an orphan.
    """

    backend: str
    queue: DurableQueue
    owner: str | None

    def as_json(self) -> dict[str, Any]:
        q = self.queue
        return {
            "backend": self.backend,
            "queue": q.name,
            "group": q.group,
            "depth": q.depth,
            "consumers": q.consumers,
            "dead_letters": q.dead_letters,
            "bindings": list(q.patterns),
            "owner": self.owner or ORPHAN,
        }

    def summary(self) -> str:
        """What the queue holds, as a sentence."""
        q = self.queue
        return (
            f"{self.backend} queue {q.name}: {q.depth} message(s) waiting, "
            f"{q.dead_letters} dead letter(s), bound to {', '.join(q.patterns) or 'nothing'}"
        )


def installed_owners() -> tuple[dict[str, str], list[str]]:
    """Consumer group → ``module:Class`` of every installed consumer, and the load errors."""
    owners: dict[str, str] = {}
    errors = []
    for plugin in iter_plugins(CONSUMER_GROUPS):
        if plugin.error is not None:
            errors.append(f"{plugin.name} ({plugin.value}): {plugin.error}")
        elif isinstance(plugin.obj, type):
            owners[group_name(plugin.obj)] = f"{plugin.obj.__module__}:{plugin.obj.__qualname__}"
    return owners, errors


@dataclass
class Survey:
    """What :func:`survey` found.

    Attributes:
        backends: the configured backends.
        found: every durable queue they keep, with its owner.
        failures: one sentence per backend that could not list its queues.
    """

    backends: list[Backend]
    found: list[Owned]
    failures: list[str]


async def survey(config: Config) -> Survey:
    """List the durable queues of every configured backend, with their owners."""
    owners, _ = installed_owners()
    result = Survey([cls(config) for cls in select_backends(config)], [], [])
    for backend in result.backends:
        try:
            queues = await backend.durable_queues()
        except MokshaError as exc:
            result.failures.append(str(exc))
            continue
        result.found += [Owned(backend.name, q, owners.get(q.group)) for q in queues]
    return result


def _report_failures(result: Survey) -> None:
    for failure in result.failures:
        stderr_console().print(Text(f"Warning: {failure}", style="yellow"))


@click.group("queues", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, for scripts.")
@common_options
@pass_state
@click.pass_context
def queues_command(ctx: click.Context, state: CliState, as_json: bool) -> int:
    """List the durable queues Moksha keeps on each configured broker.

    Shows each queue's depth, consumers attached, dead letters, bindings and
    the installed consumer class that owns it, or "orphan".
    """
    if ctx.invoked_subcommand is not None:
        return 0
    state.start_logging(ctx)
    result = run_async(survey(state.load_config()))
    _report_failures(result)
    found = result.found
    if as_json:
        click.echo(json.dumps([owned.as_json() for owned in found], indent=2))
    elif not found:
        stdout_console().print("Moksha keeps no durable queues on the configured brokers.")
    else:
        stdout_console().print(_table(found))
    return 1 if result.failures else 0


@queues_command.command("prune")
@click.option("--dry-run", is_flag=True, help="Print what would be deleted; delete nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@common_options
@pass_state
@click.pass_context
def prune_command(ctx: click.Context, state: CliState, dry_run: bool, yes: bool) -> int:
    """Delete orphan queues (no installed consumer owns them) and their dead letters.

    A queue a hub is consuming from is kept (that hub still runs its consumer).
    """
    state.start_logging(ctx)
    console = stdout_console()
    _, errors = installed_owners()
    if errors:
        raise click.ClickException(
            "some consumer plugins failed to load, so their queues would look orphaned; "
            "fix them first: " + "; ".join(errors)
        )
    result = run_async(survey(state.load_config()))
    _report_failures(result)
    orphans = [owned for owned in result.found if owned.owner is None]
    in_use = [owned for owned in orphans if owned.queue.consumers > 0]
    for owned in in_use:
        console.print(f"kept (a hub consumes from it): {owned.summary()}")
    doomed = [owned for owned in orphans if owned.queue.consumers == 0]
    if not doomed:
        console.print("No orphan queues to delete.")
        return 0
    for owned in doomed:
        console.print(f"{'would delete' if dry_run else 'orphan'}: {owned.summary()}")
    if dry_run:
        return 0
    if not yes and not click.confirm(f"Delete these {len(doomed)} queue(s)?", default=False):
        console.print("Nothing deleted.")
        return 1
    by_name = {backend.name: backend for backend in result.backends}
    failed = 0
    for owned in doomed:
        try:
            run_async(by_name[owned.backend].delete_durable_queue(owned.queue.name))
        except MokshaError as exc:
            failed += 1
            console.print(Text(f"not deleted: {exc}", style="red"))
            continue
        console.print(f"deleted {owned.backend} queue {owned.queue.name}")
    return 1 if failed else 0


def _table(found: list[Owned]) -> Table:
    table = Table("broker", "queue", "depth", "consumers", "dead letters", "bindings", "owner")
    for owned in found:
        q = owned.queue
        owner = Text(owned.owner) if owned.owner else Text(ORPHAN, style="yellow")
        table.add_row(
            owned.backend,
            q.name,
            str(q.depth),
            str(q.consumers),
            str(q.dead_letters),
            "\n".join(q.patterns),
            owner,
        )
    return table
