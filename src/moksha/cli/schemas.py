"""``moksha schemas``, ``moksha topics`` and ``moksha asyncapi``: what flows, and in what shape.

* ``moksha schemas list`` / ``show NAME`` / ``validate FILE``: the installed
  schemas (``moksha.schema`` and ``fedora.messages`` entry points), one in full,
  and messages in a file checked against them;
* ``moksha topics``: the topic catalog of a running ``moksha start``;
* ``moksha asyncapi [-o FILE]``: the AsyncAPI 3.0 document of this installation
  (installed consumers and producers, the configured brokers and live socket).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import click
import httpx
from rich.console import Console
from rich.table import Table

from moksha.cli._common import CliState, common_options, pass_state, run_async
from moksha.cli.remote import find_hub, hub_option, no_hub_found, unreachable
from moksha.errors import MessageError, MokshaError, ValidationError
from moksha.hub.validation import checked_plugins
from moksha.plugins import CONSUMER_GROUPS, PRODUCER_GROUPS
from moksha.schema import installed_schemas
from moksha.schema.asyncapi import asyncapi_document
from moksha.schema.recording import read_records

__all__ = ["asyncapi_command", "schemas_command", "topics_command"]


@click.group("schemas")
def schemas_command() -> None:
    """The message schemas installed here, and checking messages against them."""


@schemas_command.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@common_options
@pass_state
@click.pass_context
def list_schemas(ctx: click.Context, state: CliState, as_json: bool) -> int:
    """The installed schemas: name, topic, severity, class and distribution."""
    state.start_logging(ctx)
    rows = [
        {
            "name": s.name,
            "topic": s.topic or None,
            "severity": s.severity,
            "class": s.dotted,
            "package": s.package,
            "group": s.group,
        }
        for s in installed_schemas()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    table = Table("name", "topic", "severity", "class", "package")
    for row in rows:
        table.add_row(
            row["name"],
            row["topic"] or "(by header)",
            str(row["severity"]),
            row["class"],
            row["package"] or "",
        )
    click.echo(_render(table))
    return 0


@schemas_command.command("show")
@click.argument("name")
@common_options
@pass_state
@click.pass_context
def show_schema(ctx: click.Context, state: CliState, name: str) -> int:
    """One schema: its topic, class, documentation and body's JSON Schema."""
    state.start_logging(ctx)
    schema = installed_schemas().by_name.get(name)
    if schema is None:
        known = ", ".join(sorted(installed_schemas().by_name)) or "none"
        raise click.UsageError(f"no schema is named {name!r}; installed: {known}")
    click.echo(f"{schema.name}  ({schema.dotted}, {schema.package or 'no distribution'})")
    click.echo(f"topic: {schema.topic or '(named by the fedora_messaging_schema header)'}")
    click.echo(f"severity: {schema.severity}")
    if schema.cls.__doc__:
        click.echo(schema.cls.__doc__.strip())
    click.echo(json.dumps(schema.body_schema, indent=2))
    return 0


@schemas_command.command("validate")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@common_options
@pass_state
@click.pass_context
def validate_messages(ctx: click.Context, state: CliState, file: Any) -> int:
    """Check the messages in FILE against their schemas.

    FILE holds one message as a JSON object ({"topic", "body", "headers"}), or
    one a line (the record format of `moksha record` and fedora-messaging).
    Exits with 1 when one fails.
    """
    state.start_logging(ctx)
    text = file.read()
    try:
        whole = json.loads(text)
    except ValueError:
        lines = text.splitlines()
    else:
        lines = [json.dumps(whole)] if isinstance(whole, dict) else text.splitlines()
    registry = installed_schemas()
    failures = 0
    try:
        messages = list(read_records(lines, file.name))
    except MessageError as exc:
        raise click.UsageError(str(exc)) from None
    for message in messages:
        schema = registry.for_message(message)
        if schema is None:
            click.echo(f"{message.topic}: no schema (not checked)")
            continue
        try:
            schema.validate(message.topic, message.body)
        except ValidationError as exc:
            failures += 1
            click.echo(f"FAIL {exc}")
        else:
            click.echo(f"ok   {message.topic}: matches {schema.name}")
    return 1 if failures else 0


@click.command("topics")
@hub_option
@click.option("--json", "as_json", is_flag=True, help="The catalog as the hub sends it.")
@common_options
@pass_state
@click.pass_context
def topics_command(ctx: click.Context, state: CliState, hub_url: str | None, as_json: bool) -> int:
    """The topics a running hub (`moksha start`) saw: counts, rates, schemas, who declares them."""
    state.start_logging(ctx)
    config = state.load_config()
    url = hub_url or run_async(find_hub(config))
    if url is None:
        raise MokshaError(no_hub_found(config))
    try:
        response = httpx.get(f"{url}/_moksha/topics.json", timeout=5.0, trust_env=False)
    except httpx.HTTPError:
        raise unreachable(url) from None
    if response.status_code != 200:
        raise MokshaError(
            f"{url} has no topic catalog (HTTP {response.status_code}); it is served by "
            "`moksha start`"
        )
    rows = response.json()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    table = Table("topic", "messages", "per s", "schema", "summary")
    for row in rows:
        table.add_row(
            row["topic"],
            str(row["count"]),
            str(row["rate"]),
            row["schema"] or "",
            row["summary"] or "",
        )
    click.echo(_render(table))
    return 0


@click.command("asyncapi")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."
)
@common_options
@pass_state
@click.pass_context
def asyncapi_command(ctx: click.Context, state: CliState, output: Path | None) -> int:
    """The AsyncAPI 3.0 document of the installed plugins, schemas, brokers and live socket."""
    state.start_logging(ctx)
    config = state.load_config()
    consumers = [cls for cls, _ in checked_plugins(CONSUMER_GROUPS)]
    producers = [cls for cls, _ in checked_plugins(PRODUCER_GROUPS)]
    live = None
    if config.livesocket_backend == "websocket":
        live = f"http://127.0.0.1:{config.livesocket_websocket_port}"
    doc = asyncapi_document(config, installed_schemas(), consumers, producers, live)
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    if output is None:
        click.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    return 0


def _render(table: Table) -> str:
    out = io.StringIO()
    Console(width=160, file=out).print(table)
    return out.getvalue().rstrip("\n")
