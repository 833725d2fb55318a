"""The AMQP backend's one connection: first attempts, reconnection backoff, their log lines.

The first connection is retried here, with one WARNING line per failed
attempt and a backoff from ``moksha.reconnect_delay`` doubling up to
``moksha.reconnect_max_delay``.  After that aio-pika's robust connection
reconnects by itself (at once, then every ``reconnect_interval``), and
:class:`AMQPLink` doubles that interval on a timer while the outage lasts, so
both phases space their attempts, and their lines, alike.  Each failed attempt
is one WARNING from Moksha with the address (password masked) and the next
delay; aiormq's and aio-pika's own lines about these connections are filtered
out (:mod:`moksha.hub.backends.amqp_logs`).

What the connection carries (channels, queues, the "ready" state) is the
backend's: it hears of a loss and of a reconnection through two callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import aio_pika
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from moksha.hub.backends.amqp_logs import attempt_lines
from moksha.hub.backends.amqp_options import BrokerAddress

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["CONNECT_TIMEOUT", "AMQPLink", "honour_cancellation", "reason"]

log = logging.getLogger("moksha.hub.backends.amqp")

CONNECT_TIMEOUT = 10.0  # one attempt: TCP connect and AMQP handshake
_FIELDS = {"backend": "amqp"}  # structured field of the connection's log lines


def honour_cancellation() -> None:
    """Raise ``CancelledError`` if the current task was asked to stop and still runs.

    On Python 3.11, ``asyncio.wait_for`` returns the awaited result instead of
    raising when the task is cancelled in the loop turn that result arrives
    (CPython gh-86296); aiormq and aio-pika await their RPCs through it.  A
    task that loops (the backend's supervisor) calls this after such calls, so
    a ``close()`` that cancelled it is not lost, and ``close()`` does not wait
    on it forever.  Not inside an ``asyncio.timeout`` block, whose own expiry
    also counts as a cancellation until the block ends.

    Raises:
        asyncio.CancelledError: the task has a pending cancellation request.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def reason(address: BrokerAddress, exc: BaseException) -> str:
    """``exc`` as a short text for a log line or an error, with the password masked."""
    return address.scrub(str(exc) or type(exc).__name__)


class AMQPLink:
    """Opens and keeps the robust connection to ``address`` (see the module docstring).

    Args:
        address: the broker.
        config: reconnect delays.
        on_lost: called when the connection is lost; returns whether the backend
            was ready (only then is the loss worth a WARNING).
        on_reconnected: called once aio-pika reconnected and restored its channels.

    Attributes:
        connection: the connection once :meth:`open` returned, until :meth:`close`.
        last_error: the latest failure seen, for error messages.
    """

    def __init__(
        self,
        address: BrokerAddress,
        config: Config,
        on_lost: Callable[[], bool],
        on_reconnected: Callable[[], None],
    ) -> None:
        self.address = address
        self.config = config
        self._on_lost_cb = on_lost
        self._on_reconnected_cb = on_reconnected
        self.connection: aio_pika.RobustConnection | None = None
        self.last_error: BaseException | None = None
        self._open = False  # between open() and close(): losses are reconnected
        self._down = False  # lost, not reconnected yet
        self._slow_down: asyncio.TimerHandle | None = None  # next backoff step while down
        self._base_interval: float = config.reconnect_delay

    async def open(self, tried: Callable[[], None]) -> aio_pika.RobustConnection:
        """Connect, retrying with backoff until it works (or the caller is cancelled).

        Args:
            tried: called after each failed attempt (the first outcome is known).
        """
        self._open = True
        delay = self.config.reconnect_delay
        while True:  # until connected, or cancelled
            connection = aio_pika.RobustConnection(self.address.url)
            attempt_lines.own(connection, self._attempt_failed)
            try:
                await connection.connect(timeout=CONNECT_TIMEOUT)
                honour_cancellation()  # connect() awaits through wait_for
                break
            except BaseException as exc:
                # Also when cancelled: an attempt left open would retry forever on its own.
                await connection.close()
                attempt_lines.disown(connection)
                if not isinstance(exc, CONNECTION_EXCEPTIONS):
                    raise
                self.last_error = exc
                log.warning(
                    "amqp: cannot reach %s (%s); retrying in %gs",
                    self.address,
                    reason(self.address, exc),
                    delay,
                    extra=_FIELDS,
                )
            tried()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.reconnect_max_delay)
        self._base_interval = connection.reconnect_interval
        connection.close_callbacks.add(self._on_lost)
        connection.reconnect_callbacks.add(self._on_reconnected)
        self.connection = connection
        log.info("amqp: connected to %s", self.address, extra=_FIELDS)
        return connection

    async def close(self) -> None:
        """Close the connection (unacked deliveries are requeued, exclusive queues go)."""
        self._open = False
        if self._slow_down is not None:
            self._slow_down.cancel()
            self._slow_down = None
        connection, self.connection = self.connection, None
        if connection is not None:
            attempt_lines.disown(connection)
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await connection.close()

    def _attempt_failed(self, error: BaseException | None, delay: float) -> None:
        """A reconnection attempt of aio-pika's failed: Moksha's one line for it."""
        if error is not None:
            self.last_error = error
        log.warning(
            "amqp: cannot reach %s (%s); retrying in %gs",
            self.address,
            reason(self.address, error) if error is not None else "the attempt was cut short",
            delay,
            extra=_FIELDS,
        )

    def _on_lost(self, _connection: object, exc: BaseException | None = None) -> None:
        self._down = True
        was_ready = self._on_lost_cb()
        if was_ready and self._open:
            log.warning(
                "amqp: lost the connection to %s (%s); reconnecting",
                self.address,
                reason(self.address, exc) if exc else "closed",
                extra=_FIELDS,
            )
        if exc is not None:
            self.last_error = exc
        if self._slow_down is None and self._open:
            loop = asyncio.get_running_loop()
            self._slow_down = loop.call_later(self.config.reconnect_delay, self._back_off)

    def _back_off(self) -> None:
        """Double aio-pika's reconnect interval (up to the maximum) while the outage lasts.

        aio-pika retries at a fixed ``reconnect_interval`` and reads the attribute
        before each wait, so doubling it on this timer spaces the attempts (and
        their log lines) out the way the first connection's are.
        """
        connection = self.connection
        if connection is None or not self._open or not self._down:
            self._slow_down = None
            return
        doubled = max(connection.reconnect_interval * 2, self.config.reconnect_delay)
        interval = min(doubled, self.config.reconnect_max_delay)
        connection.reconnect_interval = interval
        self._slow_down = asyncio.get_running_loop().call_later(interval, self._back_off)

    def _on_reconnected(self, _connection: object) -> None:
        self._down = False
        log.info("amqp: reconnected to %s", self.address, extra=_FIELDS)
        if self._slow_down is not None:
            self._slow_down.cancel()
            self._slow_down = None
        if self.connection is not None:
            self.connection.reconnect_interval = self._base_interval
        self._on_reconnected_cb()
