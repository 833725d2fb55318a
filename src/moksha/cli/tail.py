"""``moksha tail``: print the messages a running hub routes, one line each.

It connects to the hub's live socket as a browser would (``/livesocket/ws``,
the protocol of :mod:`moksha.livesocket.protocol`), subscribes to the patterns
given, and prints what arrives.  Messages go to stdout; what the hub says
about the connection (``__error__`` frames, history gaps, the close) goes to
stderr, so ``moksha tail --json ... | jq`` sees messages only.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.text import Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from moksha.cli._common import CliState, common_options, pass_state, run_async, stderr_console
from moksha.cli.remote import (
    find_hub,
    hub_option,
    is_loopback,
    no_hub_found,
    unreachable,
    websocket_url,
)
from moksha.errors import BackendError, BackendUnavailable
from moksha.livesocket.frames import CLOSE_SLOW, ERROR, POSITION, RECOVERED, SUBSCRIBE

__all__ = ["format_line", "tail_command"]

OPEN_TIMEOUT_S = 5.0
# Closing is a courtesy to the hub; Ctrl-C should not wait on it for long.
CLOSE_TIMEOUT_S = 1.0
# The hub does not limit what it sends; a body this large is surely a mistake worth a close.
MAX_FRAME_BYTES = 16 * 2**20
# After --count messages, how long to wait for the hub to say whether a --since replay was whole.
DRAIN_S = 1.0

Show = Callable[[str, dict[str, Any]], None]

_CLOSE_REASONS = {
    1001: "the hub is shutting down",
    1006: "the connection dropped",
    1012: "the hub stopped (or is restarting)",
    CLOSE_SLOW: "this tail read too slowly and its queue at the hub filled up",
}


@click.command("tail")
@click.argument("patterns", nargs=-1, required=True, metavar="PATTERN...")
@hub_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print each frame as the hub sent it, one JSON object a line (for scripts and pipes).",
)
@click.option("--count", type=click.IntRange(min=1), metavar="N", help="Exit after N messages.")
@click.option(
    "--since",
    metavar="ID",
    help="Start with what came after event ID (the id of a --json line), as far back as the "
    "hub's history reaches.",
)
@common_options
@pass_state
@click.pass_context
def tail_command(
    ctx: click.Context,
    state: CliState,
    patterns: tuple[str, ...],
    hub_url: str | None,
    as_json: bool,
    count: int | None,
    since: str | None,
) -> int:
    """Print the messages a running hub routes on PATTERN, one line each, until Ctrl-C.

    Patterns are AMQP-style: * matches one word, # any number
    (moksha tail 'org.*.event' 'audit.#'). Each line shows the time, the topic
    and the body as compact JSON, cut to the terminal's width; --json prints
    the frames whole.

    If the connection to the hub drops, tail says so and exits with status 1;
    it does not reconnect (run it again, with --since to get what it missed).
    """
    state.start_logging(ctx)
    config = state.load_config()
    url = hub_url or run_async(find_hub(config))
    if url is None:
        raise BackendUnavailable(no_hub_found(config))
    show = _print_json if as_json else _pretty_printer()
    try:
        run_async(_tail(url, patterns, show, since=since, count=count))
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # The reader went away (`| head -3`): that ends the tail. Point stdout at
        # /dev/null so the interpreter's final flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


@dataclass
class _Progress:
    """What the tail has seen so far.

    Attributes:
        count: the messages to show before stopping; None: no end.
        since: the event id --since gave.
        last_id: the last event id shown (or the --since one, or where the hub's
            history stood when the tail subscribed), to resume after.
        replaying: the patterns whose replay (--since) the hub has not yet
            said was complete or not.
        shown: the messages shown.
    """

    count: int | None
    since: str | None
    last_id: str | None
    replaying: set[str]
    shown: int = 0

    @property
    def done(self) -> bool:
        return self.count is not None and self.shown >= self.count


async def _tail(
    url: str, patterns: Sequence[str], show: Show, *, since: str | None, count: int | None
) -> None:
    """Subscribe to ``patterns`` at the hub and ``show`` messages until ``count`` or the close.

    Raises:
        BackendUnavailable: the hub cannot be reached, or the connection ends.
        BackendError: the hub refuses the WebSocket.
    """
    websocket = await _open(url)
    progress = _Progress(count, since, since, set(patterns) if since else set())
    async with websocket:
        try:
            for pattern in patterns:
                # The position: having shown nothing, the tail still has an id to resume from.
                body = {"pattern": pattern, "since": since, "position": True}
                await websocket.send(json.dumps({"topic": SUBSCRIBE, "body": body}))
            async with asyncio.timeout(None) as drain:
                async for text in websocket:
                    _receive(text if isinstance(text, str) else text.decode(), show, progress)
                    if progress.done:
                        if not progress.replaying:
                            return
                        # The hub says whether a replay was whole right after it: worth a
                        # short wait, so --count does not hide a gap in the history.
                        if drain.when() is None:
                            drain.reschedule(asyncio.get_running_loop().time() + DRAIN_S)
        except TimeoutError:
            return
        except ConnectionClosed:
            pass  # said below, whatever the way it closed
    raise BackendUnavailable(_closed(url, websocket, progress.last_id))


def _receive(text: str, show: Show, progress: _Progress) -> None:
    """Show a message frame; report control frames on stderr."""
    frame = _decode(text)
    if frame is None:
        return
    topic, body = frame["topic"], frame.get("body")
    if topic == ERROR:
        error = body.get("error") if isinstance(body, dict) else body
        _warn(f"the hub says: {error}")
    elif topic == POSITION:
        progress.last_id = progress.last_id or frame.get("id")
    elif topic == RECOVERED:
        body = body if isinstance(body, dict) else {}
        pattern = str(body.get("pattern"))
        progress.replaying.discard(pattern)
        if body.get("recovered") is False:
            _warn(
                f"some messages on {pattern} after {progress.since} are no longer in the "
                "hub's history (it keeps a bounded number, or it restarted); showing what "
                "it still has"
            )
    elif not progress.done:
        show(text, frame)
        progress.shown += 1
        progress.last_id = frame.get("id") or progress.last_id


async def _open(url: str) -> ClientConnection:
    address = websocket_url(url)
    try:
        return await connect(
            address,
            # A proxy from the environment has no business between two local processes.
            proxy=None if is_loopback(url) else True,
            open_timeout=OPEN_TIMEOUT_S,
            close_timeout=CLOSE_TIMEOUT_S,
            max_size=MAX_FRAME_BYTES,
        )
    except ConnectionRefusedError as exc:
        raise unreachable(url) from exc
    except TimeoutError as exc:
        raise BackendUnavailable(
            f"the hub at {url} did not open the live socket within {OPEN_TIMEOUT_S:g} s"
        ) from exc
    except OSError as exc:
        raise BackendUnavailable(f"cannot reach the hub at {url}: {exc}") from exc
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status == 404:
            raise BackendError(
                f"{url} has no live socket (404 on /livesocket/ws): is it a Moksha hub with "
                "moksha.livesocket.backend = websocket?"
            ) from exc
        raise BackendError(f"the hub at {url} refused the live socket ({status})") from exc
    except WebSocketException as exc:
        raise BackendError(f"cannot open the live socket at {address}: {exc}") from exc


def _decode(text: str | bytes) -> dict[str, Any] | None:
    try:
        frame = json.loads(text)
    except ValueError:
        frame = None
    if isinstance(frame, dict) and isinstance(frame.get("topic"), str):
        return frame
    _warn(f"the hub sent a frame that is not a Moksha frame: {str(text)[:200]}")
    return None


def _closed(url: str, websocket: ClientConnection, last_id: str | None) -> str:
    code, reason = websocket.close_code, websocket.close_reason
    why = _CLOSE_REASONS.get(code or 1006) or reason or "it closed the connection"
    again = f"--since {last_id}" if last_id else "--since ID"
    return (
        f"lost the hub at {url}: {why} (close code {code or 1006}); moksha tail does not "
        f"reconnect: run it again, with {again} to get what it missed"
    )


def _warn(sentence: str) -> None:
    stderr_console().print(sentence, style="yellow", markup=False)


def _print_json(text: str, frame: dict[str, Any]) -> None:
    # A frame is one line unless a foreign publisher's JSON body held newlines.
    if "\n" in text or "\r" in text:
        text = json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
    click.echo(text)


def format_line(frame: dict[str, Any], now: datetime | None = None) -> Text:
    """One message as ``tail`` prints it: ``HH:MM:SS.mmm topic  body``.

    Args:
        frame: a message frame (``topic``, ``body``).
        now: the time shown (default: the current local time).

    Returns:
        A rich Text, the topic styled; ``str()`` of it is the plain line.
    """
    stamp = (now or datetime.now()).strftime("%H:%M:%S.%f")[:-3]
    topic = str(frame["topic"])
    # A topic is the publisher's text: never let it move the cursor or change colours.
    if not topic.isprintable():
        topic = json.dumps(topic)
    body = json.dumps(frame.get("body"), ensure_ascii=False, separators=(",", ":"))
    return Text.assemble((stamp, "dim"), " ", (topic, "bold cyan"), "  ", body)


def _pretty_printer() -> Show:
    if not sys.stdout.isatty():
        return lambda _text, frame: click.echo(format_line(frame).plain)
    console = Console(highlight=False)

    def show(_text: str, frame: dict[str, Any]) -> None:
        console.print(format_line(frame), no_wrap=True, overflow="ellipsis", crop=True)

    return show
