"""One AMQP 1.0 connection on asyncio: proton's protocol engine, pumped by an asyncio Protocol.

:class:`Engine` owns proton's engine objects -- a :class:`proton.Connection` bound to
a :class:`proton.Transport` (SASL ``PLAIN`` or ``ANONYMOUS``) that reports to a
:class:`proton.Collector` -- and moves their bytes; there is no proton reactor and
no thread.  What the socket reads is pushed into the transport, never more than its
:meth:`~proton.Transport.capacity`; the collector's events are then handled (a
delivery read and accepted, a settlement resolving its publish, a link attached);
and what the transport has to send is written to the socket, once per read or per
turn of the event loop, however many publishes and credits that turn queued.
TLS (``amqps://``) is asyncio's: proton only ever sees the plain AMQP bytes.  Idle
timeouts and heart-beats are proton's, woken by ``loop.call_at`` at the deadline
that :meth:`~proton.Transport.tick` returns.

It never reconnects: :attr:`Engine.lost` resolves with the reason once the socket or
the AMQP connection ended, every publish still waiting for its settlement fails with
:class:`ConnectionLost`, and the backend decides what comes next.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from proton import Collector, Connection, Delivery, Endpoint, Event, Transport

if TYPE_CHECKING:
    from moksha.hub.backends.amqp1_options import Broker

__all__ = ["ConnectionLost", "Engine", "OnMessage"]

log = logging.getLogger("moksha.hub.backends.amqp1")

_REFUSED: dict[int, str] = {
    Delivery.REJECTED: "the broker rejected it",
    Delivery.RELEASED: "the broker released it (no route?)",
    Delivery.MODIFIED: "the broker did not take it (modified)",
}


class ConnectionLost(ConnectionError):
    """The connection ended before the broker settled a publish or attached a link."""


OnMessage = Callable[[bytes], None]
"""Called with the encoded message of each complete delivery on its link (accepted)."""


class Engine(asyncio.Protocol):
    """One AMQP 1.0 connection; hand it to ``loop.create_connection`` (see the module doc)."""

    def __init__(
        self,
        broker: Broker,
        on_credit: Callable[[], None],
        on_lost: Callable[[Engine], None],
    ) -> None:
        self.broker = broker
        self._loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = self._loop.create_future()
        """Resolves once the broker opened the AMQP connection (fails if it ended first)."""
        self.lost: asyncio.Future[str] = self._loop.create_future()
        """Resolves with the reason once the connection ended."""
        self._on_credit = on_credit  # the sending link got credit
        self._on_lost = on_lost  # called at once, before any future fails
        self._collector = Collector()
        self._connection = Connection()
        self._connection.collect(self._collector)
        self._connection.container = f"moksha-{uuid.uuid4().hex[:12]}"
        self._connection.hostname = broker.host
        self._transport = Transport()
        sasl = self._transport.sasl()
        sasl.allowed_mechs("PLAIN ANONYMOUS")
        sasl.allow_insecure_mechs = True  # PLAIN under asyncio's TLS, which proton cannot see
        if broker.user:
            self._connection.user = broker.user
            self._connection.password = broker.password or ""
        self._transport.bind(self._connection)
        self._session = self._connection.session()
        self._connection.open()
        self._session.open()
        self._socket: asyncio.Transport | None = None
        self._paused = False
        self._pump_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._error: str | None = None
        self._tags = itertools.count()
        self._unsettled: dict[str, asyncio.Future[None]] = {}  # delivery tag -> its publish
        self._attaching: dict[str, asyncio.Future[None]] = {}  # link name -> attached
        self._receivers: dict[str, OnMessage] = {}  # link name -> its callback
        self._processing = False
        # By event type.  They take the event as Any: proton types every accessor of an
        # event Optional, where the type of the event says which ones are set.
        self._handlers: dict[Any, Callable[[Any], None]] = {
            Event.DELIVERY: self._delivery,
            Event.LINK_FLOW: self._flow,
            Event.CONNECTION_REMOTE_OPEN: self._remote_open,
            Event.LINK_REMOTE_OPEN: self._link_open,
            Event.LINK_REMOTE_CLOSE: self._link_closed,
            Event.SESSION_REMOTE_CLOSE: self._session_closed,
            Event.CONNECTION_REMOTE_CLOSE: self._remote_close,
            Event.TRANSPORT_ERROR: self._transport_error,
        }

    @property
    def is_open(self) -> bool:
        """Whether links can be attached and messages sent."""
        return self.opened.done() and not self.lost.done()

    # -- links and messages (from the backend) -----------------------------

    def sender(self, address: str) -> tuple[Any, asyncio.Future[None]]:
        """Attach a sending link to ``address``; the future resolves once it is attached.

        The future fails with :class:`ConnectionRefusedError` when the broker refuses
        the link, with :class:`ConnectionLost` when the connection ends first.
        """
        sender = self._session.sender(f"moksha-out-{uuid.uuid4().hex[:12]}")
        sender.target.address = address
        return sender, self._attach(sender)

    def receiver(
        self, source: str, name: str, credit: int, on_message: OnMessage
    ) -> tuple[Any, asyncio.Future[None]]:
        """Attach a receiving link on ``source`` with ``credit`` (see :meth:`sender`)."""
        receiver = self._session.receiver(name)
        receiver.source.address = source
        self._receivers[name] = on_message
        attached = self._attach(receiver)
        receiver.flow(credit)
        return receiver, attached

    def _attach(self, link: Any) -> asyncio.Future[None]:
        attached = self._attaching[link.name] = self._loop.create_future()
        if self.lost.done():
            attached.set_exception(ConnectionLost(f"amqp1: connection to {self.broker} lost"))
        link.open()
        self._pump_soon()
        return attached

    def detach(self, link: Any) -> None:
        """Close ``link``: no more deliveries on it (what it held goes back to its queue)."""
        self._receivers.pop(link.name, None)
        if self.is_open:
            link.close()
            self._pump_soon()

    def flow(self, receiver: Any, credit: int) -> None:
        """Give ``receiver`` ``credit`` more messages."""
        if self.is_open:
            receiver.flow(credit)
            self._pump_soon()

    def send(self, sender: Any, payload: bytes, settled: asyncio.Future[None]) -> None:
        """Send one encoded message on ``sender`` (which has credit); ``settled`` resolves
        when the broker accepted it, and fails when it refused it or the connection ended."""
        tag = str(next(self._tags))
        sender.delivery(tag)
        sender.stream(payload)
        sender.advance()
        self._unsettled[tag] = settled
        self._pump_soon()

    def close(self) -> None:
        """Close the AMQP connection politely; :attr:`lost` resolves once the socket closed."""
        if not self.lost.done():
            self._connection.close()
            self._pump()

    def abort(self) -> None:
        """Drop the socket now."""
        if self._socket is not None:
            self._socket.abort()
        self._ended("aborted by us")

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._socket = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        self._pump()

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        while data:  # bounded: every pass consumes capacity > 0 bytes, or stops
            capacity = transport.capacity()
            if capacity <= 0:  # closed for input (the error is in its condition)
                break
            chunk, data = data[:capacity], data[capacity:]  # no copy when all of it fits
            transport.push(chunk)
            self._process()
        self._pump()

    def eof_received(self) -> bool:
        self._close_tail()
        self._pump()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._close_tail()
            self._process()
        finally:
            self._ended(str(exc) if exc else "the broker closed the connection")

    def _close_tail(self) -> None:
        """No more input: proton ends the connection (with an error unless it was closed)."""
        if self._transport.capacity() >= 0:
            self._transport.close_tail()

    def pause_writing(self) -> None:
        self._paused = True  # proton keeps the bytes until the socket takes them again

    def resume_writing(self) -> None:
        self._paused = False
        self._pump()

    # -- the pump -------------------------------------------------------------

    def _pump_soon(self) -> None:
        """Pump once this turn of the event loop is over (one write for a batch)."""
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        """Handle the collector's events, then write what the transport has to send."""
        self._pump_scheduled = False
        self._process()
        socket = self._socket
        if socket is None or socket.is_closing() or self._paused:
            return
        transport = self._transport
        pending = wrote = transport.pending()
        while pending > 0:  # bounded: each pass pops what it wrote
            socket.write(transport.peek(pending) or b"")
            transport.pop(pending)
            self._process()  # popping may end the connection (a close frame sent)
            pending = transport.pending()
        if pending < 0:  # the transport's output ended: nothing more will be written
            socket.close()
        elif wrote > 0 and self._timer is not None:
            # Proton sends a heart-beat when nothing went out between two ticks: let it
            # see this write, or the broker could hear nothing for a whole idle timeout.
            transport.tick(self._loop.time())

    def _process(self) -> None:
        """Handle the collector's events, in order; not again from inside a handler."""
        if self._processing:
            return  # the outer loop below sees whatever the handler caused
        self._processing = True
        collector, handlers = self._collector, self._handlers
        try:
            while (event := collector.peek()) is not None:  # bounded by the events queued
                try:
                    handler = handlers.get(event.type)
                    if handler is not None:
                        handler(event)
                finally:
                    collector.pop()
        finally:
            self._processing = False

    def _tick(self) -> None:
        """Proton's timers (idle timeout, heart-beats): run them, then wait for the next."""
        self._timer = None
        if self.lost.done():
            return
        deadline = self._transport.tick(self._loop.time())
        self._pump()
        if deadline and not self.lost.done():
            self._timer = self._loop.call_at(deadline, self._tick)

    def _ended(self, reason: str) -> None:
        if self.lost.done():
            return
        reason = self._error or reason
        self._on_lost(self)
        if self._timer is not None:
            self._timer.cancel()
        lost = ConnectionLost(f"amqp1: connection to {self.broker} lost ({reason})")
        if not self.opened.done():
            self.opened.set_exception(lost)
            self.opened.exception()  # retrieved: nobody may be waiting any more
        for future in self._unsettled.values():
            if not future.done():
                future.set_exception(lost)
        self._unsettled.clear()
        for future in self._attaching.values():
            if not future.done():
                future.set_exception(lost)
        self._attaching.clear()
        self._receivers.clear()
        self.lost.set_result(reason)

    # -- events ---------------------------------------------------------------

    def _delivery(self, event: Any) -> None:
        delivery, link = event.delivery, event.link
        if link.is_receiver:
            if delivery.readable and not delivery.partial:
                payload = link.recv(delivery.pending)
                link.advance()
                delivery.update(Delivery.ACCEPTED)
                delivery.settle()
                on_message = self._receivers.get(link.name)
                if on_message is not None and payload is not None:
                    on_message(payload)
        elif delivery.updated:
            state = delivery.remote_state
            future = self._unsettled.pop(delivery.tag, None)
            delivery.settle()
            if future is not None and not future.done():
                if state == Delivery.ACCEPTED:
                    future.set_result(None)
                else:
                    problem = _REFUSED.get(state, f"the broker settled it as {state}")
                    future.set_exception(ConnectionRefusedError(f"publish failed: {problem}"))

    def _flow(self, event: Any) -> None:
        if event.link.is_sender and event.link.credit > 0:
            self._on_credit()

    def _remote_open(self, event: Any) -> None:
        if not self.opened.done():
            self.opened.set_result(None)
        self._loop.call_soon(self._tick)  # not from here: ticking pumps, and we are pumping

    def _link_open(self, event: Any) -> None:
        link = event.link
        terminus = link.remote_source if link.is_receiver else link.remote_target
        if terminus.address is None:
            return  # refused: a detach with the reason follows
        attached = self._attaching.pop(link.name, None)
        if attached is not None and not attached.done():
            attached.set_result(None)

    def _link_closed(self, event: Any) -> None:
        link = event.link
        if link.state & Endpoint.LOCAL_CLOSED:
            return  # the broker's answer to our own detach
        reason = _describe(link.remote_condition) or "detached by the broker"
        self._receivers.pop(link.name, None)
        link.close()
        attached = self._attaching.pop(link.name, None)
        if attached is not None:  # refused while attaching (e.g. no such queue)
            if not attached.done():
                attached.set_exception(ConnectionRefusedError(reason))
            return
        # An attached link the broker dropped: start over (the backend re-attaches all).
        log.warning("amqp1: %s dropped the link %s (%s)", self.broker, link.name, reason)
        self._close_for(f"the broker dropped a link: {reason}")

    def _session_closed(self, event: Any) -> None:
        # RabbitMQ ends the session, every link with it, when an attach names no queue.
        reason = _describe(event.session.remote_condition) or "ended by the broker"
        self._close_for(f"the broker ended the session: {reason}")

    def _remote_close(self, event: Any) -> None:
        self._close_for(_describe(event.connection.remote_condition) or "closed by the broker")

    def _transport_error(self, event: Any) -> None:
        self._error = self._error or _describe(event.transport.condition) or "transport error"

    def _close_for(self, reason: str) -> None:
        """Close the connection; the first reason given is the one :attr:`lost` reports."""
        self._error = self._error or reason
        self._connection.close()


def _describe(condition: Any) -> str | None:
    """An AMQP error condition as one line, or None."""
    if condition is None:
        return None
    return f"{condition.name}: {condition.description}" if condition.description else condition.name
