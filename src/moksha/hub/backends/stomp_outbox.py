"""Published STOMP messages kept until the broker confirmed them, and sent again after a loss.

STOMP confirms frames only through receipts.  A receipt on each SEND would
cost a round trip per message, and RabbitMQ would also copy the ``receipt``
header into the message its AMQP consumers see.  So :class:`Outbox` asks for
receipts on a separate, empty BEGIN/ABORT pair (see
:meth:`~moksha.hub.backends.stomp_connection.StompConnection.sync`): the
broker handles a connection's frames in order, so that receipt confirms every
SEND written before it.

Two ways to wait, chosen per message:

- a message with a ``confirmed`` future (the backend's blocking mode) gets a
  receipt soon after it is written, shared with every other message written
  in the same event-loop turn, and its future resolves once it is confirmed;
- a message without one is covered by a receipt asked for when none is
  outstanding and every :data:`CONFIRM_EVERY` messages.

Whatever was not confirmed when a connection ends is sent again, in order, on
the next one (:meth:`Outbox.resend`), so a consumer may see it twice; a
message sent :data:`MAX_RESENDS` times without confirmation is dropped with an
ERROR log and its future fails, so a message the broker keeps refusing cannot
loop forever.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from moksha.errors import BackendError
from moksha.hub.backends.stomp_connection import ConnectionLost
from moksha.hub.backends.stomp_protocol import StompServerError

if TYPE_CHECKING:
    from moksha.hub.backends.stomp_connection import StompConnection

__all__ = ["CONFIRM_EVERY", "MAX_RESENDS", "MAX_UNCONFIRMED", "Outbox", "Outgoing"]

log = logging.getLogger(__name__)

CONFIRM_EVERY = 100
"""Without a waiting publisher, ask for a receipt at least every this many messages."""
MAX_UNCONFIRMED = 2000
"""Publishing waits while this many sent messages are unconfirmed."""
MAX_RESENDS = 3
"""A message sent again this often without being confirmed is dropped."""


@dataclass(slots=True, eq=False)
class Outgoing:
    """One SEND frame's content, and the future its publisher awaits (if it does)."""

    destination: str
    body: bytes
    headers: dict[str, str]
    confirmed: asyncio.Future[None] | None = None
    seq: int = 0
    resends: int = 0

    def settle(self, error: BaseException | None = None) -> None:
        """Resolve :attr:`confirmed`, or fail it with ``error``."""
        future = self.confirmed
        if future is None or future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
            # The publisher may have given up waiting; do not warn about an unread error.
            future.add_done_callback(_read_error)


def _read_error(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class Outbox:
    """The messages written on the current connection and not confirmed yet, oldest first."""

    def __init__(self) -> None:
        self._items: deque[Outgoing] = deque()
        self._seq = itertools.count(1)
        self._since_sync = 0
        self._last_sync: int | None = None  # seq covered by the newest outstanding receipt
        self._sync_scheduled = False
        self._refusal: StompServerError | None = None  # the broker's last ERROR
        self.progress = asyncio.Event()
        """Set whenever messages were confirmed or the connection changed."""

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        """Whether publishers should wait for receipts before sending more."""
        return len(self._items) >= MAX_UNCONFIRMED

    def transmit(self, connection: StompConnection, out: Outgoing) -> None:
        """Write ``out`` on ``connection`` and keep it until a receipt covers it.

        Raises:
            ConnectionLost: the connection is closed; ``out`` was not kept.
            StompProtocolError: a header cannot be encoded; ``out`` was not kept.
        """
        connection.send(out.destination, out.body, out.headers)
        out.seq = next(self._seq)
        self._items.append(out)
        self._since_sync += 1
        if out.confirmed is not None:
            if not self._sync_scheduled:
                # Once this turn of the loop is over, so concurrent publishers share it.
                self._sync_scheduled = True
                asyncio.get_running_loop().call_soon(self._sync_later, connection)
        elif self._last_sync is None or self._since_sync >= CONFIRM_EVERY:
            self._sync(connection)

    def _sync_later(self, connection: StompConnection) -> None:
        self._sync_scheduled = False
        if connection.is_open and self._items:
            self._sync(connection)

    def _sync(self, connection: StompConnection) -> None:
        seq = self._items[-1].seq
        receipt = connection.sync()
        self._last_sync, self._since_sync = seq, 0
        receipt.add_done_callback(partial(self._confirmed, seq))

    def _confirmed(self, seq: int, receipt: asyncio.Future[None]) -> None:
        if receipt.cancelled():
            return
        error = receipt.exception()
        if error is not None:  # the connection is gone: resend() takes over
            if isinstance(error, StompServerError):
                self._refusal = error
            return
        items = self._items
        while items and items[0].seq <= seq:
            items.popleft().settle()
        if self._last_sync == seq:
            self._last_sync = None
        self.progress.set()

    def resend(self, connection: StompConnection) -> None:
        """Write everything unconfirmed again, in order, on a new ``connection``.

        Raises:
            ConnectionLost: the new connection closed too; nothing is lost.
        """
        pending, self._items = self._items, deque()
        self._last_sync, self._since_sync = None, 0
        while pending:
            out = pending[0]
            if out.resends >= MAX_RESENDS:
                pending.popleft()
                why = f"{out.resends + 1} connections were lost before the broker confirmed it"
                if self._refusal is not None:
                    said = self._refusal.details.partition("\n")[0] or self._refusal.message
                    why += f"; the broker last said: {said}"
                log.error("stomp: dropping a message for %s: %s", out.destination, why)
                out.settle(BackendError(f"stomp: could not send to {out.destination}: {why}"))
                continue
            try:
                self.transmit(connection, out)
            except ConnectionLost:
                self._items.extend(pending)
                raise
            out.resends += 1
            pending.popleft()
        if self._items and self._last_sync != self._items[-1].seq:
            self._sync(connection)
        self.progress.set()

    def confirm_all(self) -> None:
        """Everything was confirmed at once (by the DISCONNECT receipt)."""
        while self._items:
            self._items.popleft().settle()
        self.progress.set()

    def abandon(self, error: BaseException) -> int:
        """Give up on every unconfirmed message; return how many there were."""
        count = len(self._items)
        while self._items:
            self._items.popleft().settle(error)
        self.progress.set()
        return count
