"""``moksha send``: publish one message through a running hub, or the configured backends.

A hub is the one ``--hub URL`` (or ``$MOKSHA_HUB_URL``) names, else one found on
this machine's default ports (see :mod:`moksha.cli.remote`); it publishes the
message over HTTP.  With none, the message goes out through the backends the
configuration names, as any :class:`~moksha.hub.MokshaHub` client would send it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click

from moksha.cli._common import CliState, common_options, pass_state, run_async, stderr_console
from moksha.cli.remote import candidate_urls, find_hub, hub_option, publish_remote
from moksha.config import Config
from moksha.hub import MokshaHub
from moksha.hub.backends import select_backends
from moksha.hub.backends.memory import MemoryBackend
from moksha.message import Message

__all__ = ["memory_only_warning", "parse_body", "send_command"]


def memory_only_warning(config: Config) -> str:
    """What to tell a user whose message reached nobody, and how to reach a hub next time.

    Args:
        config: the configuration the message was sent with (it names the ports looked at).

    Returns:
        One paragraph, starting with "Warning:".
    """
    places = " or ".join(url.removeprefix("http://") for url in candidate_urls(config))
    return (
        f"Warning: no Moksha hub answers on {places} and no broker is configured, so the "
        "message only went to this short-lived process's own in-memory bus and nobody saw it. "
        "Start a hub (`moksha start`, or `moksha hub` with moksha.livesocket.backend = "
        "websocket) or give --hub URL; or configure a broker (amqp_broker, stomp_uri or "
        "zmq_enabled)."
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
@hub_option
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
    hub_url: str | None,
) -> int:
    """Publish BODY on TOPIC and print the message id.

    BODY is sent as JSON when it parses as JSON ('{"a": 1}', 42, "true"), else
    as a string; with --raw it is sent as the text given. BODY "-" reads it
    from stdin.

    The message goes to the hub --hub names, else to a hub answering on
    127.0.0.1:8080 (`moksha start`) or on the live socket's port (9998 unless
    configured), else out through the configured brokers.
    """
    state.start_logging(ctx)
    if body == "-":
        # `echo hello | moksha send t -` means "hello", not "hello\n".
        with click.open_file("-") as stdin:  # "-" is stdin, decoded as click decodes it
            body = stdin.read().removesuffix("\n")
    config = state.load_config()
    value: Any = body if raw else parse_body(body)
    url = hub_url
    if url is None and not _brokers_configured(config):
        url = run_async(find_hub(config))  # with no broker, a local hub is the only way out
    if url is not None:
        message_id, sent_to = run_async(publish_remote(url, topic, value, headers, raw=raw))
        click.echo(f"sent {message_id} to {sent_to}")
        return 0
    message, memory_only = run_async(_publish(config, topic, value, headers, jsonify=not raw))
    if memory_only:
        stderr_console().print(memory_only_warning(config), style="yellow", markup=False)
    click.echo(f"sent {message.id} to {message.topic}")
    return 0


def _brokers_configured(config: Config) -> bool:
    return [cls.name for cls in select_backends(config)] != [MemoryBackend.name]


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
