"""``moksha send``: publish one message through the configured backends."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click

from moksha.cli._common import CliState, common_options, pass_state, run_async, stderr_console
from moksha.config import Config
from moksha.hub import MokshaHub
from moksha.hub.backends.memory import MemoryBackend
from moksha.message import Message

__all__ = ["parse_body", "send_command"]

MEMORY_ONLY_WARNING = (
    "Warning: no broker is configured, so the message only went to this short-lived "
    "process's own in-memory bus and nobody else saw it. To reach a running hub, "
    "configure a broker (amqp_broker, stomp_uri or zmq_enabled); a later `--hub URL` "
    "option will reach `moksha start` over its live socket."
)


def _parse_headers(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    headers = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE; write e.g. --header source=cron")
        headers[key.strip()] = value
    return headers


@click.command("send")
@click.argument("topic")
@click.argument("body")
@click.option(
    "-H",
    "--header",
    "headers",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parse_headers,
    help="A header to send along; repeat for more.",
)
@click.option("--raw", is_flag=True, help="Send BODY as text as it is, not encoded as JSON.")
@common_options
@pass_state
@click.pass_context
def send_command(
    ctx: click.Context,
    state: CliState,
    topic: str,
    body: str,
    headers: dict[str, str],
    raw: bool,
) -> int:
    """Publish BODY on TOPIC and print the message id.

    BODY is sent as JSON when it parses as JSON ('{"a": 1}', 42, "true"), else
    as a string; with --raw it is sent as the text given. BODY "-" reads it
    from stdin.
    """
    state.start_logging(ctx)
    if body == "-":
        # `echo hello | moksha send t -` means "hello", not "hello\n".
        body = click.get_text_stream("stdin").read().removesuffix("\n")
    config = state.load_config()
    value: Any = body if raw else parse_body(body)
    message, memory_only = run_async(_publish(config, topic, value, headers, jsonify=not raw))
    if memory_only:
        stderr_console().print(MEMORY_ONLY_WARNING, style="yellow", markup=False)
    click.echo(f"sent {message.id} to {message.topic}")
    return 0


def parse_body(text: str) -> Any:
    """The JSON value ``text`` holds, or ``text`` itself when it is not JSON.

    Args:
        text: the BODY argument.

    Returns:
        A dict, list, number, bool or None when ``text`` is JSON; else ``text``.
    """
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _publish(
    config: Config, topic: str, body: Any, headers: Mapping[str, str], *, jsonify: bool
) -> tuple[Message, bool]:
    async with MokshaHub(config) as hub:
        memory_only = [backend.name for backend in hub.backends] == [MemoryBackend.name]
        message = await hub.publish(topic, body, headers=headers, jsonify=jsonify)
    return message, memory_only
