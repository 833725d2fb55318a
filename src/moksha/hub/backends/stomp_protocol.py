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

The codec is usable alone: :func:`encode_frame` turns a :class:`Frame` into
bytes and :class:`FrameParser` turns a byte stream, cut anywhere, back into
frames.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from moksha.errors import MessageError

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

HEARTBEAT = b"\n"
"""A heart-beat: one end-of-line between frames."""

CLIENT_COMMANDS = frozenset(
    {"CONNECT", "STOMP", "SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK"}
    | {"BEGIN", "COMMIT", "ABORT", "DISCONNECT"}
)
SERVER_COMMANDS = frozenset({"CONNECTED", "MESSAGE", "RECEIPT", "ERROR"})
COMMANDS = CLIENT_COMMANDS | SERVER_COMMANDS

# The spec exempts the connection handshake from header escaping.
_UNESCAPED_COMMANDS = frozenset({"CONNECT", "STOMP", "CONNECTED"})
_ESCAPES = str.maketrans({"\\": "\\\\", "\r": "\\r", "\n": "\\n", ":": "\\c"})
_UNESCAPES = {"\\": "\\", "r": "\r", "n": "\n", "c": ":"}
_ESCAPE_SEQUENCE = re.compile(r"\\(.?)", re.DOTALL)
_HEAD_END = re.compile(rb"\n\r?\n")
_DIGITS = re.compile(r"[0-9]+")
_HEARTBEAT_HEADER = re.compile(r"\s*([0-9]+)\s*,\s*([0-9]+)\s*")


class StompProtocolError(MessageError):
    """The STOMP conversation broke the protocol.

    Raised for a frame that cannot be encoded or decoded, and for a frame sent
    or received in a state where it is not allowed.  The message says what was
    wrong.
    """


class StompServerError(MessageError):
    """The broker sent an ERROR frame.

    Args:
        frame: the ERROR frame; kept as :attr:`frame`.  Its ``message`` header
            is :attr:`message` and its body, as text, :attr:`details`.
    """

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.message = frame.headers.get("message", "")
        self.details = frame.body.decode("utf-8", "replace").strip()
        text = f"the STOMP server reported an error: {self.message or '(no message header)'}"
        super().__init__(f"{text}\n{self.details}" if self.details else text)


@dataclass(frozen=True, repr=False)
class Frame:
    """One STOMP frame.

    ``headers`` keep the order they arrived in; when a header repeats, the
    first occurrence is the one kept (STOMP 1.2).  ``repr()`` hides a
    ``passcode`` header.
    """

    command: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def __repr__(self) -> str:
        headers = {k: ("***" if k == "passcode" else v) for k, v in self.headers.items()}
        return f"Frame(command={self.command!r}, headers={headers!r}, body={self.body!r})"


def encode_frame(frame: Frame, *, escape: bool = True, content_length: bool = True) -> bytes:
    """Serialize ``frame`` to wire bytes.

    A ``content-length`` header is appended whenever the body is not empty, so
    bodies may contain NUL bytes.

    Args:
        frame: the frame to encode.
        escape: escape ``\\``, CR, LF and ``:`` in header names and values as
            STOMP 1.2 requires.  CONNECT, STOMP and CONNECTED frames are never
            escaped (the spec exempts them); pass ``False`` for STOMP 1.0 peers.
        content_length: ``False`` leaves ``content-length`` out unless the body
            holds a NUL byte, which only ``content-length`` can carry.  STOMP
            allows this; it matters because RabbitMQ copies a SEND's
            ``content-length`` into the AMQP headers its consumers see.

    Returns:
        The frame, terminated by its NUL byte.

    Raises:
        StompProtocolError: the command is unknown, a header cannot be written
            (empty name, NUL byte, or a character unescaped frames cannot hold),
            or a given ``content-length`` does not match the body.
    """
    if frame.command not in COMMANDS:
        raise StompProtocolError(f"cannot encode unknown STOMP command {frame.command!r}")
    headers = dict(frame.headers)
    length = headers.get("content-length")
    if length is None and frame.body and (content_length or b"\0" in frame.body):
        headers["content-length"] = str(len(frame.body))
    elif length is not None and length != str(len(frame.body)):
        raise StompProtocolError(
            f"{frame.command} frame has content-length {length!r} but its body is "
            f"{len(frame.body)} bytes; leave content-length out and it is added for you"
        )
    escape = escape and frame.command not in _UNESCAPED_COMMANDS
    lines = [frame.command]
    for name, value in headers.items():
        _check_header(frame.command, name, value, escaped=escape)
        if escape:
            name, value = name.translate(_ESCAPES), value.translate(_ESCAPES)
        lines.append(f"{name}:{value}")
    try:
        head = "\n".join(lines).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StompProtocolError(
            f"{frame.command} frame headers cannot be encoded as UTF-8: {exc}"
        ) from exc
    return head + b"\n\n" + frame.body + b"\0"


def _check_header(command: str, name: str, value: str, *, escaped: bool) -> None:
    if not name:
        raise StompProtocolError(f"{command} frame has a header with an empty name")
    if "\0" in name or "\0" in value:
        raise StompProtocolError(f"{command} frame header {name!r} contains a NUL byte")
    if not escaped and (set(name) & {":", "\r", "\n"} or set(value) & {"\r", "\n"}):
        raise StompProtocolError(
            f"{command} frame header {name!r}: {value!r} cannot be sent unescaped; "
            "names must not contain ':', CR or LF and values must not contain CR or LF"
        )


def _unescape(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        try:
            return _UNESCAPES[match.group(1)]
        except KeyError:
            raise StompProtocolError(
                f"header text {text!r} contains the undefined escape {match.group(0)!r}; "
                "STOMP 1.2 defines only \\\\, \\r, \\n and \\c"
            ) from None

    return _ESCAPE_SEQUENCE.sub(replace, text)


class FrameParser:
    """Incremental STOMP frame parser.

    Feed it bytes as they arrive, cut anywhere; take complete frames from
    :meth:`events`.  End-of-lines between frames are heart-beats and are
    counted in :attr:`heartbeats_received`.  After an error the parser is
    unusable: the stream position is lost.

    Args:
        max_header_size: largest accepted command line plus header block, in
            bytes.
        max_body_size: largest accepted body, in bytes.
    """

    def __init__(
        self, *, max_header_size: int = 64 * 1024, max_body_size: int = 16 * 1024 * 1024
    ) -> None:
        self.max_header_size = max_header_size
        self.max_body_size = max_body_size
        self.heartbeats_received = 0
        self._buffer = bytearray()
        self._frames: list[Frame] = []
        # Command, headers and content-length of a frame whose body is pending.
        self._head: tuple[str, dict[str, str], int | None] | None = None
        # Buffer offset already searched, so byte-by-byte input stays linear.
        self._scanned = 0
        self._error: StompProtocolError | None = None

    def feed(self, data: bytes) -> None:
        """Add received bytes and parse every frame they complete.

        Raises:
            StompProtocolError: the stream is malformed or exceeds a limit.
        """
        if self._error is not None:
            raise StompProtocolError(f"the parser stopped at an earlier error: {self._error}")
        self._buffer += data
        try:
            while self._step():
                pass
        except StompProtocolError as exc:
            self._error = exc
            raise

    def events(self) -> list[Frame]:
        """Return and forget the frames parsed so far."""
        frames, self._frames = self._frames, []
        return frames

    def _step(self) -> bool:
        """Consume one heart-beat, header block or body; False if more bytes are needed."""
        buffer = self._buffer
        if self._head is not None:
            return self._parse_body(*self._head)
        for eol in (b"\n", b"\r\n"):
            if buffer.startswith(eol):
                del buffer[: len(eol)]
                self.heartbeats_received += 1
                return True
        if not buffer or buffer == b"\r":
            return False
        return self._parse_head()

    def _parse_head(self) -> bool:
        buffer = self._buffer
        end = _HEAD_END.search(buffer, max(self._scanned - 2, 0))
        size = end.end() if end else len(buffer)
        if buffer.find(b"\0", self._scanned, end.start() if end else size) != -1:
            raise StompProtocolError(
                "frame ended (NUL byte) before the blank line that closes its headers"
            )
        if size > self.max_header_size:
            raise StompProtocolError(
                f"frame header block is larger than max_header_size={self.max_header_size} "
                "bytes; raise the limit if the broker really sends headers this large"
            )
        if end is None:
            self._scanned = len(buffer)
            return False
        try:
            text = buffer[: end.start()].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StompProtocolError(f"frame header block is not valid UTF-8: {exc}") from exc
        del buffer[: end.end()]
        self._scanned = 0
        command, *lines = (line.removesuffix("\r") for line in text.split("\n"))
        if command not in COMMANDS:
            raise StompProtocolError(
                f"unknown STOMP command {command[:40]!r}; is the peer speaking STOMP 1.2?"
            )
        headers: dict[str, str] = {}
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon or not name:
                raise StompProtocolError(
                    f"malformed header line {line[:80]!r} in {command} frame: expected 'name:value'"
                )
            if command not in _UNESCAPED_COMMANDS:
                name, value = _unescape(name), _unescape(value)
            headers.setdefault(name, value)
        self._head = (command, headers, self._content_length(command, headers))
        return True

    def _content_length(self, command: str, headers: dict[str, str]) -> int | None:
        value = headers.get("content-length")
        if value is None:
            return None
        if not _DIGITS.fullmatch(value):
            raise StompProtocolError(
                f"{command} frame has content-length {value[:40]!r}, "
                "which is not a non-negative integer"
            )
        if int(value) > self.max_body_size:
            raise StompProtocolError(
                f"{command} frame body of {value} bytes (content-length) is larger than "
                f"max_body_size={self.max_body_size}"
            )
        return int(value)

    def _parse_body(self, command: str, headers: dict[str, str], length: int | None) -> bool:
        buffer = self._buffer
        if length is not None:
            if len(buffer) <= length:
                return False
            if buffer[length] != 0:
                raise StompProtocolError(
                    f"{command} frame body of content-length {length} is not followed by "
                    f"a NUL byte (found {bytes(buffer[length : length + 1])!r})"
                )
            end = length
        else:
            end = buffer.find(b"\0", self._scanned)
            if end == -1 and len(buffer) <= self.max_body_size:
                self._scanned = len(buffer)
                return False
            if end == -1 or end > self.max_body_size:
                raise StompProtocolError(
                    f"{command} frame body is larger than max_body_size={self.max_body_size} "
                    "bytes; raise the limit or send smaller messages"
                )
        self._frames.append(Frame(command, headers, bytes(buffer[:end])))
        del buffer[: end + 1]
        self._head, self._scanned = None, 0
        return True


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
