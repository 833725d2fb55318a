"""The STOMP backend's reconnection: the brokers tried in turn, backoff, their log lines.

:func:`reconnect_forever` connects to the brokers of ``stomp_uri`` in turn,
logging one WARNING per failed attempt (with the next broker, or the delay
before the next round), backing off from ``reconnect_delay`` to
``reconnect_max_delay`` after each round.  Each connection made is handed to
the backend, which serves it until it is lost; then the brokers are tried
again, at once unless the broker refused something (an ERROR frame), which
it may refuse again.

What a connection carries (subscriptions, unconfirmed messages, the "ready"
state) is the backend's: :class:`~moksha.hub.backends.stomp.StompBackend`
passes the callbacks.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from moksha.errors import MessageError
from moksha.hub.backends.stomp_connection import CONNECT_TIMEOUT, OnMessage, StompConnection
from moksha.hub.backends.stomp_options import StompOptions
from moksha.hub.backends.stomp_protocol import StompServerError

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["FIELDS", "reconnect_forever"]

log = logging.getLogger("moksha.hub.backends.stomp")

FIELDS = {"backend": "stomp"}  # structured field of the connection's log lines


async def reconnect_forever(
    options: StompOptions,
    config: Config,
    on_message: OnMessage,
    serve: Callable[[StompConnection], Awaitable[BaseException]],
    *,
    attempted: asyncio.Event,
    closing: Callable[[], bool],
) -> None:
    """Connect, have ``serve`` run the connection until lost, and again, until cancelled.

    Args:
        options: the brokers and how to connect to them.
        config: supplies ``reconnect_delay`` and ``reconnect_max_delay``.
        on_message: called by each connection for each MESSAGE frame.
        serve: runs a new connection; returns why it was lost.
        attempted: set once a whole round of brokers failed (``serve`` sets it
            on success), so the backend's ``connect()`` stops waiting.
        closing: whether the backend is closing: a lost connection is then
            not replaced.
    """
    brokers = options.brokers
    delay = config.reconnect_delay
    failures = 0
    for attempt in itertools.count():  # until close() cancels this task
        broker = brokers[attempt % len(brokers)]
        try:
            connection = await StompConnection.open(broker, options, on_message)
        except (OSError, TimeoutError, MessageError) as exc:
            failures += 1
            if failures % len(brokers):
                following = brokers[(attempt + 1) % len(brokers)]
                log.warning(
                    "stomp: cannot reach %s (%s); trying %s next",
                    broker,
                    _why(exc),
                    following,
                    extra=FIELDS,
                )
                continue
            log.warning(
                "stomp: cannot reach %s (%s); retrying in %.3gs",
                broker,
                _why(exc),
                delay,
                extra=FIELDS,
            )
            attempted.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, config.reconnect_max_delay)
            continue
        failures = 0
        reason = await serve(connection)
        if closing():
            return
        log.warning(
            "stomp: lost the connection to %s (%s); reconnecting",
            broker,
            _why(reason),
            extra=FIELDS,
        )
        if isinstance(reason, StompServerError):
            # What the broker refused may be refused again: do not hammer it.
            await asyncio.sleep(delay)
            delay = min(delay * 2, config.reconnect_max_delay)
        else:
            delay = config.reconnect_delay


def _why(exc: BaseException) -> str:
    """A one-line reason for a log line (never holds the passcode: it is not in any error)."""
    if isinstance(exc, StompServerError):
        said = [exc.message, exc.details.partition("\n")[0]]
        return "the broker sent ERROR: " + ": ".join(part for part in said if part)
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {CONNECT_TIMEOUT:.0f}s"
    return str(exc) or type(exc).__name__
