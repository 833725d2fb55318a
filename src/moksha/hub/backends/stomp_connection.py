"""One STOMP connection on asyncio: moves a ClientProtocol's bytes, beats, waits for receipts.

:class:`StompConnection` is the I/O half of
:class:`~moksha.hub.backends.stomp_protocol.ClientProtocol`: it opens the
socket (TLS when the options carry an SSL context), performs the CONNECT
handshake, then runs three tasks it owns until :meth:`StompConnection.close`:

- the reader feeds received bytes to the protocol, hands MESSAGE frames to a
  callback, resolves receipt futures, and turns an ERROR frame into
  :class:`~moksha.hub.backends.stomp_protocol.StompServerError`;
- the heart-beat sender writes an end-of-line whenever nothing was written for
  half the negotiated outgoing interval;
- the watchdog declares the connection dead when nothing arrived for twice the
  negotiated incoming interval (unless we stopped reading on purpose,
  see :attr:`StompConnection.paused`).

It never reconnects: when the connection ends, :attr:`StompConnection.lost`
resolves with the reason and every pending receipt fails; the backend decides
what comes next.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from moksha.errors import MessageError
from moksha.hub.backends.stomp_protocol import ClientProtocol, Frame, State, StompServerError

if TYPE_CHECKING:
    from moksha.hub.backends.stomp_options import Broker, StompOptions

__all__ = ["CONNECT_TIMEOUT", "ConnectionLost", "StompConnection"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
"""Seconds allowed for TCP, TLS and the CONNECT/CONNECTED exchange."""
_READ_SIZE = 256 * 1024

OnMessage = Callable[["StompConnection", Frame], Awaitable[None]]


class ConnectionLost(ConnectionError):
    """The connection ended before the frame could be sent or its receipt came back."""


class StompConnection:
    """A connected STOMP session; build it with :meth:`open`."""

    def __init__(
        self,
        broker: Broker,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: ClientProtocol,
        on_message: OnMessage,
    ) -> None:
        self.broker = broker
        self.protocol = protocol
        self.paused = False
        """True while the MESSAGE callback holds the reader (the watchdog then waits)."""
        loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[BaseException] = loop.create_future()
        """Resolves with the reason once the connection ended."""
        self.last_received = self.last_sent = loop.time()
        self._loop = loop
        self._reader, self._writer = reader, writer
        self._on_message = on_message
        self._receipts: dict[str, asyncio.Future[None]] = {}
        self._numbers = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._flush_scheduled = False

    @classmethod
    async def open(
        cls, broker: Broker, options: StompOptions, on_message: OnMessage
    ) -> StompConnection:
        """Connect to ``broker`` and complete the STOMP handshake.

        Raises:
            OSError: the TCP or TLS connection failed, or the broker hung up.
            TimeoutError: it took longer than :data:`CONNECT_TIMEOUT`.
            StompServerError: the broker refused the CONNECT (e.g. bad login).
            StompProtocolError: the broker does not speak STOMP 1.2.
        """
        beat = options.heartbeat_ms
        protocol = ClientProtocol(
            host=options.vhost,
            login=options.login,
            passcode=options.passcode,
            heartbeat=(beat, beat),
        )
        async with asyncio.timeout(CONNECT_TIMEOUT):
            reader, writer = await asyncio.open_connection(
                broker.host, broker.port, ssl=options.ssl
            )
            try:
                protocol.connect()
                writer.write(protocol.data_to_send())
                while protocol.state is State.CONNECTING:
                    data = await reader.read(_READ_SIZE)
                    if not data:
                        raise ConnectionResetError("the broker hung up before CONNECTED")
                    protocol.receive_data(data)
                if protocol.error is not None:
                    raise protocol.error
            except BaseException:
                writer.transport.abort()
                raise
        early = [f for f in protocol.events_received() if f.command != "CONNECTED"]
        connection = cls(broker, reader, writer, protocol, on_message)
        connection._start(early)
        return connection

    def _start(self, early: list[Frame]) -> None:
        create = self._loop.create_task
        self._tasks.append(create(self._read(early), name=f"moksha stomp reader {self.broker}"))
        if self.protocol.outgoing_heartbeat_ms:
            self._tasks.append(create(self._beat(self.protocol.outgoing_heartbeat_ms / 1000)))
        if self.protocol.incoming_heartbeat_ms:
            self._tasks.append(create(self._watch(self.protocol.incoming_heartbeat_ms / 1000)))

    @property
    def is_open(self) -> bool:
        """Whether frames can still be sent."""
        return not self.lost.done() and self.protocol.state is State.CONNECTED

    # -- sending ----------------------------------------------------------

    def _flush(self) -> None:
        data = self.protocol.data_to_send()
        if data and not self._writer.transport.is_closing():
            self._writer.write(data)
            self.last_sent = self._loop.time()

    def _flush_soon(self) -> None:
        """Write what is queued once this turn of the event loop is over.

        Concurrent publishers (and acks of a batch) then share one socket write
        instead of one each; a frame that must leave now (receipts, DISCONNECT)
        flushes at once, and takes everything queued before it along, in order.
        """
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _require_open(self) -> None:
        if not self.is_open:
            raise ConnectionLost(f"the connection to {self.broker} is closed")

    def _receipt(self) -> tuple[str, asyncio.Future[None]]:
        receipt = f"m-{next(self._numbers)}"
        future = self._receipts[receipt] = self._loop.create_future()
        return receipt, future

    def send(self, destination: str, body: bytes, headers: dict[str, str]) -> None:
        """Write a SEND frame (with ``content-length`` only when the body needs it).

        Raises:
            ConnectionLost: the connection is closed.
            StompProtocolError: a header cannot be encoded.
        """
        self._require_open()
        self.protocol.send(destination, body, headers, content_length=False)
        self._flush_soon()

    def sync(self) -> asyncio.Future[None]:
        """Ask for a receipt that confirms every frame written before it.

        A BEGIN with a receipt, then ABORT: a receipt on the SEND itself would
        reach AMQP consumers as a ``receipt`` header on RabbitMQ.

        Raises:
            ConnectionLost: the connection is closed.
        """
        self._require_open()
        receipt, future = self._receipt()
        self.protocol.begin(receipt, receipt=receipt)
        self.protocol.abort(receipt)
        self._flush()
        return future

    def subscribe(
        self, destination: str, id: str, ack: str, headers: dict[str, str]
    ) -> asyncio.Future[None]:
        """Write a SUBSCRIBE frame; return the future of its receipt.

        Raises:
            ConnectionLost: the connection is closed.
        """
        self._require_open()
        receipt, future = self._receipt()
        self.protocol.subscribe(destination, id, ack, headers, receipt=receipt)
        self._flush()
        return future

    def unsubscribe(self, id: str) -> asyncio.Future[None]:
        """Write an UNSUBSCRIBE frame; return the future of its receipt.

        Raises:
            ConnectionLost: the connection is closed.
        """
        self._require_open()
        receipt, future = self._receipt()
        self.protocol.unsubscribe(id, receipt=receipt)
        self._flush()
        return future

    def ack(self, frame: Frame) -> None:
        """ACK a MESSAGE; nothing to do once the connection is gone (it is redelivered)."""
        if self.is_open:
            self.protocol.ack(frame)
            self._flush_soon()

    def nack(self, frame: Frame) -> None:
        """NACK a MESSAGE so the broker requeues it (see :meth:`ack`)."""
        if self.is_open:
            self.protocol.nack(frame)
            self._flush_soon()

    async def drain(self) -> None:
        """Wait while the socket's write buffer is full; a lost connection is not raised here."""
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    async def disconnect(self, timeout: float) -> None:
        """DISCONNECT and wait for the receipt, which confirms every frame before it.

        Raises:
            ConnectionLost: the connection ended first.
            TimeoutError: no receipt within ``timeout`` seconds.
        """
        self._require_open()
        receipt, future = self._receipt()
        self.protocol.disconnect(receipt=receipt)
        self._flush()
        async with asyncio.timeout(timeout):
            await future

    def resumed(self) -> None:
        """The MESSAGE callback let the reader go on: restart the watchdog's count."""
        self.paused = False
        self.last_received = self._loop.time()

    def fail(self, reason: BaseException) -> None:
        """End the connection now (e.g. the broker stopped answering)."""
        if not self.lost.done():
            self.lost.set_result(reason)
        error = reason if isinstance(reason, StompServerError) else ConnectionLost(str(reason))
        for future in self._receipts.values():
            if not future.done():
                future.set_exception(error)
        self._receipts.clear()
        self._writer.transport.abort()

    async def close(self) -> None:
        """Abort the socket and stop the connection's tasks."""
        self.fail(ConnectionLost("closed by us"))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- tasks ------------------------------------------------------------

    async def _read(self, early: list[Frame]) -> None:
        protocol = self.protocol
        try:
            for frame in early:
                await self._handle(frame)
            while True:  # until the broker hangs up or close() cancels us
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    raise ConnectionResetError("the broker closed the connection")
                self.last_received = self._loop.time()
                protocol.receive_data(data)
                for frame in protocol.events_received():
                    await self._handle(frame)
        except (OSError, MessageError) as exc:
            self.fail(exc)
        except Exception as exc:  # a bug of ours must not leave the backend waiting forever
            log.exception("stomp: the reader for %s failed", self.broker)
            self.fail(exc)

    async def _handle(self, frame: Frame) -> None:
        command = frame.command
        if command == "MESSAGE":
            await self._on_message(self, frame)
        elif command == "RECEIPT":
            future = self._receipts.pop(frame.headers.get("receipt-id", ""), None)
            if future is not None and not future.done():
                future.set_result(None)
        elif command == "ERROR":
            # Raised to end the reader; the backend logs it with the loss of the connection.
            raise self.protocol.error or StompServerError(frame)

    async def _beat(self, interval: float) -> None:
        while self.is_open:
            await asyncio.sleep(interval / 2)
            if self.is_open and self._loop.time() - self.last_sent >= interval / 2:
                self.protocol.send_heartbeat()
                self._flush()

    async def _watch(self, interval: float) -> None:
        while not self.lost.done():
            await asyncio.sleep(interval / 2)
            if self.paused:
                continue
            silent = self._loop.time() - self.last_received
            if silent > 2 * interval:
                self.fail(TimeoutError(f"nothing received for {silent:.1f}s"))
