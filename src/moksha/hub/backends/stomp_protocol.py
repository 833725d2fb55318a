"""STOMP 1.2 without I/O: a frame codec and the client protocol state machine.

Nothing here touches a socket.  :class:`ClientProtocol` takes the bytes the
broker sent (:meth:`~ClientProtocol.receive_data`) and hands back the frames it
understood (:meth:`~ClientProtocol.events_received`) and the bytes to write
(:meth:`~ClientProtocol.data_to_send`); a transport only moves those bytes::

    protocol = ClientProtocol(host="/", login="guest", passcode="guest")
    protocol.connect()
    sock.sendall(protocol.data_to_send())
    protocol.receive_data(sock.recv(65536))          # CONNECTED arrives
    protocol.subscribe("/topic/moksha.test", id="0")
    sock.sendall(protocol.data_to_send())
    for frame in protocol.events_received():
        if frame.command == "ERROR":
            raise StompServerError(frame)
        ...

The frame codec it builds on is :mod:`moksha.hub.backends.stomp_frames`; its
names are re-exported here.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

from moksha.hub.backends.stomp_frames import (
    HEARTBEAT,
    Frame,
    FrameParser,
    StompProtocolError,
    StompServerError,
    encode_frame,
)

__all__ = [
    "HEARTBEAT",
    "ClientProtocol",
    "Frame",
    "FrameParser",
    "State",
    "StompProtocolError",
    "StompServerError",
    "encode_frame",
]

_HEARTBEAT_HEADER = re.compile(r"\s*([0-9]+)\s*,\s*([0-9]+)\s*")


class State(enum.Enum):
    """Where a :class:`ClientProtocol` is in the STOMP conversation."""

    CONNECTING = enum.auto()
    CONNECTED = enum.auto()
    DISCONNECTING = enum.auto()
    CLOSED = enum.auto()


class ClientProtocol:
    """STOMP 1.2 client side, sans I/O.

    Methods that send (``connect``, ``subscribe``, ``send``...) queue bytes for
    :meth:`data_to_send`; :meth:`receive_data` parses what the broker sent and
    queues the frames for :meth:`events_received`.

    Args:
        host: the ``host`` header; RabbitMQ reads it as the virtual host.
        login: user name, if the broker wants one.
        passcode: password; never shown by ``repr()``.
        heartbeat: ``(cx, cy)`` in milliseconds: how often we can send
            heart-beats and how often we want them; 0 means never.
        max_frame_size: largest frame body accepted from the broker, in bytes.
    """

    def __init__(
        self,
        host: str = "/",
        login: str | None = None,
        passcode: str | None = None,
        heartbeat: tuple[int, int] = (10000, 10000),
        max_frame_size: int = 16 * 1024 * 1024,
    ) -> None:
        if len(heartbeat) != 2 or min(heartbeat) < 0:
            raise StompProtocolError(
                f"heartbeat must be two non-negative millisecond counts, got {heartbeat!r}"
            )
        self.host = host
        self.login = login
        self._passcode = passcode
        self.heartbeat = heartbeat
        self.state = State.CONNECTING
        self.error: StompServerError | None = None  # set when the broker sends ERROR
        self.outgoing_heartbeat_ms = 0
        self.incoming_heartbeat_ms = 0
        self.server_headers: dict[str, str] = {}  # of CONNECTED: version, session, server
        self._parser = FrameParser(max_body_size=max_frame_size)
        self._outgoing = bytearray()
        self._events: list[Frame] = []
        self._pending: set[str] = set()
        self._subscriptions: set[str] = set()
        self._connect_sent = False
        self._disconnect_receipt: str | None = None

    def __repr__(self) -> str:
        return f"ClientProtocol(host={self.host!r}, login={self.login!r}, state={self.state.name})"

    @property
    def pending_receipts(self) -> frozenset[str]:
        """Receipt ids requested and not yet confirmed by a RECEIPT frame."""
        return frozenset(self._pending)

    @property
    def heartbeats_received(self) -> int:
        """Heart-beat EOLs received so far; any received byte also shows liveness."""
        return self._parser.heartbeats_received

    # Outgoing.

    def connect(self) -> None:
        """Queue the CONNECT frame.

        Raises:
            StompProtocolError: CONNECT was already sent.
        """
        if self._connect_sent or self.state is not State.CONNECTING:
            raise StompProtocolError("connect() was already called on this connection")
        headers = {
            "accept-version": "1.2",
            "host": self.host,
            "heart-beat": f"{self.heartbeat[0]},{self.heartbeat[1]}",
        }
        if self.login is not None:
            headers["login"] = self.login
        if self._passcode is not None:
            headers["passcode"] = self._passcode
        self._outgoing += encode_frame(Frame("CONNECT", headers))
        self._connect_sent = True

    def subscribe(
        self,
        destination: str,
        id: str,
        ack: str = "auto",
        headers: Mapping[str, str] | None = None,
        receipt: str | None = None,
    ) -> None:
        """Queue a SUBSCRIBE frame; ``ack`` is auto, client or client-individual.

        Raises:
            StompProtocolError: not connected, a bad ``ack`` mode, or ``id`` in use.
        """
        if ack not in ("auto", "client", "client-individual"):
            raise StompProtocolError(
                f"ack mode {ack!r} is not one of 'auto', 'client', 'client-individual'"
            )
        if id in self._subscriptions:
            raise StompProtocolError(f"subscription id {id!r} is already in use")
        required = {"destination": destination, "id": id, "ack": ack}
        self._send("SUBSCRIBE", required, headers, receipt=receipt)
        self._subscriptions.add(id)

    def unsubscribe(self, id: str, receipt: str | None = None) -> None:
        """Queue an UNSUBSCRIBE frame for subscription ``id``.

        Raises:
            StompProtocolError: not connected, or no subscription has this id.
        """
        if id not in self._subscriptions:
            raise StompProtocolError(f"there is no subscription with id {id!r}")
        self._send("UNSUBSCRIBE", {"id": id}, receipt=receipt)
        self._subscriptions.discard(id)

    def send(
        self,
        destination: str,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        receipt: str | None = None,
        *,
        content_length: bool = True,
    ) -> None:
        """Queue a SEND frame of ``body`` to ``destination``.

        ``content_length=False`` sends no ``content-length`` header unless the
        body holds a NUL byte (see :func:`encode_frame`).

        Raises:
            StompProtocolError: not connected, or a header cannot be encoded.
        """
        self._send(
            "SEND",
            {"destination": destination},
            headers,
            body=body,
            receipt=receipt,
            content_length=content_length,
        )

    def begin(self, transaction: str, receipt: str | None = None) -> None:
        """Queue BEGIN of ``transaction``.

        Raises:
            StompProtocolError: not connected.
        """
        self._send("BEGIN", {"transaction": transaction}, receipt=receipt)

    def commit(self, transaction: str, receipt: str | None = None) -> None:
        """Queue COMMIT of ``transaction`` (see :meth:`begin`)."""
        self._send("COMMIT", {"transaction": transaction}, receipt=receipt)

    def abort(self, transaction: str, receipt: str | None = None) -> None:
        """Queue ABORT of ``transaction`` (see :meth:`begin`)."""
        self._send("ABORT", {"transaction": transaction}, receipt=receipt)

    def ack(self, message: Frame | str, receipt: str | None = None) -> None:
        """Acknowledge a MESSAGE frame, or the value of its ``ack`` header.

        Raises:
            StompProtocolError: not connected, or the MESSAGE has no ``ack`` header.
        """
        self._send("ACK", {"id": self._ack_id(message)}, receipt=receipt)

    def nack(self, message: Frame | str, receipt: str | None = None) -> None:
        """Reject a MESSAGE frame, or the value of its ``ack`` header (see :meth:`ack`)."""
        self._send("NACK", {"id": self._ack_id(message)}, receipt=receipt)

    def disconnect(self, receipt: str | None = "disconnect") -> None:
        """Queue DISCONNECT.

        With a ``receipt`` the state is DISCONNECTING until the broker's RECEIPT
        for it, then CLOSED; with ``receipt=None`` it is CLOSED at once.
        """
        self._send("DISCONNECT", {}, receipt=receipt)
        self._disconnect_receipt = receipt
        self.state = State.CLOSED if receipt is None else State.DISCONNECTING

    def send_heartbeat(self) -> None:
        """Queue one heart-beat EOL."""
        self._require_connected("a heart-beat")
        self._outgoing += HEARTBEAT

    def data_to_send(self) -> bytes:
        """Return and forget the bytes queued for the broker."""
        data, self._outgoing = bytes(self._outgoing), bytearray()
        return data

    def _send(
        self,
        command: str,
        headers: dict[str, str],
        extra: Mapping[str, str] | None = None,
        *,
        body: bytes = b"",
        receipt: str | None = None,
        content_length: bool = True,
    ) -> None:
        self._require_connected(f"a {command} frame")
        for name, value in (extra or {}).items():
            headers.setdefault(name, value)  # the required headers win
        if receipt is not None:
            if receipt in self._pending:
                raise StompProtocolError(f"receipt id {receipt!r} is already pending")
            headers["receipt"] = receipt
        self._outgoing += encode_frame(Frame(command, headers, body), content_length=content_length)
        if receipt is not None:
            self._pending.add(receipt)

    def _require_connected(self, what: str) -> None:
        if self.state is not State.CONNECTED:
            hint = (
                "; call connect() and wait for CONNECTED" if self.state is State.CONNECTING else ""
            )
            raise StompProtocolError(
                f"cannot send {what} while the connection is {self.state.name}{hint}"
            )

    @staticmethod
    def _ack_id(message: Frame | str) -> str:
        if isinstance(message, str):
            return message
        if "ack" not in message.headers:
            raise StompProtocolError(
                "this MESSAGE has no ack header; subscribe with ack='client' or "
                "'client-individual' to acknowledge messages"
            )
        return message.headers["ack"]

    # Incoming.

    def receive_data(self, data: bytes) -> None:
        """Parse bytes from the broker; frames become :meth:`events_received`.

        Data arriving once the connection is CLOSED is ignored.

        Raises:
            StompProtocolError: the stream is malformed or breaks the protocol;
                the connection is then CLOSED.
        """
        if self.state is State.CLOSED:
            return
        try:
            self._parser.feed(data)
            for frame in self._parser.events():
                self._handle(frame)
        except StompProtocolError:
            self.state = State.CLOSED
            raise

    def events_received(self) -> list[Frame]:
        """Return and forget the CONNECTED, MESSAGE, RECEIPT and ERROR frames received."""
        events, self._events = self._events, []
        return events

    def _handle(self, frame: Frame) -> None:
        if self.state is State.CLOSED:
            return  # whatever follows ERROR or the DISCONNECT receipt in a chunk is moot
        if frame.command == "CONNECTED":
            if not self._connect_sent or self.state is not State.CONNECTING:
                raise StompProtocolError("the server sent CONNECTED when no CONNECT was pending")
            self._negotiate(frame.headers.get("heart-beat", "0,0"))
            self.server_headers = dict(frame.headers)
            self.state = State.CONNECTED
        elif frame.command == "MESSAGE":
            if self.state is State.CONNECTING:
                raise StompProtocolError("the server sent MESSAGE before CONNECTED")
        elif frame.command == "RECEIPT":
            receipt = frame.headers.get("receipt-id", "")
            self._pending.discard(receipt)
            if receipt == self._disconnect_receipt and self.state is State.DISCONNECTING:
                self.state = State.CLOSED
        elif frame.command == "ERROR":
            self.error = StompServerError(frame)
            self.state = State.CLOSED  # the broker closes the connection after ERROR
        else:
            raise StompProtocolError(
                f"the server sent a {frame.command} frame, which only clients send"
            )
        self._events.append(frame)

    def _negotiate(self, value: str) -> None:
        match = _HEARTBEAT_HEADER.fullmatch(value)
        if match is None:
            raise StompProtocolError(
                f"CONNECTED heart-beat header {value!r} is not two integers like '10000,10000'"
            )
        sx, sy = int(match.group(1)), int(match.group(2))
        cx, cy = self.heartbeat
        self.outgoing_heartbeat_ms = 0 if cx == 0 or sy == 0 else max(cx, sy)
        self.incoming_heartbeat_ms = 0 if cy == 0 or sx == 0 else max(cy, sx)
