"""STOMP 1.2 frames without I/O: :class:`Frame`, :func:`encode_frame` and :class:`FrameParser`.

:func:`encode_frame` turns a :class:`Frame` into bytes (header escaping,
``content-length`` for bodies that may hold NULs); :class:`FrameParser` turns a
byte stream, cut anywhere, back into frames and counts heart-beats.  The client
state machine built on them is :mod:`moksha.hub.backends.stomp_protocol`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from moksha.errors import MessageError

__all__ = [
    "COMMANDS",
    "HEARTBEAT",
    "Frame",
    "FrameParser",
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
    if "\\" not in text:
        return text  # the common case, spared a regex substitution per header

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
