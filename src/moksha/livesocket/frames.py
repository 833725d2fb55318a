"""The live-socket wire format: control topics, close codes, actions and frames.

Every frame is a JSON text object ``{"topic": str, "body": any}``, as in the
original Moksha WebSocket server; :mod:`moksha.livesocket.protocol` describes
the conversation.  The frames the server builds are here: :func:`encode_event`
for each message (on the hot path: once per message per client),
:func:`error_frame`, :func:`recovered_frame` and :func:`position_frame` for
control frames.  The
:data:`Action` values are what a :class:`~moksha.livesocket.protocol.Session`
asks the server to do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, TypeAlias

__all__ = [
    "AUTH",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_SLOW",
    "CLOSE_UNAUTHORIZED",
    "ECHO_CHARS",
    "ERROR",
    "POSITION",
    "RECOVERED",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "Action",
    "Close",
    "Publish",
    "Reply",
    "Subscribe",
    "Unsubscribe",
    "encode_event",
    "error_frame",
    "position_frame",
    "recovered_frame",
]

# Close codes (RFC 6455 section 7.4; 4000-4999 are the application's own).
CLOSE_POLICY_VIOLATION = 1008  # rate limit, refused origin, publishes refused again and again
CLOSE_MESSAGE_TOO_BIG = 1009  # a frame over max_frame_bytes
CLOSE_UNAUTHORIZED = 4001  # a bad or expired token
CLOSE_SLOW = 4008  # the outgoing queue filled up under the "disconnect" slow policy

# Control topics.
SUBSCRIBE = "__topic_subscribe__"
UNSUBSCRIBE = "__topic_unsubscribe__"
AUTH = "__auth__"
ERROR = "__error__"
RECOVERED = "__recovered__"
POSITION = "__position__"

# How much of a bad frame an error frame quotes back.
ECHO_CHARS = 200
# A JWT's header is base64url JSON, so it starts with '{"' encoded: "eyJ".
_JWT = re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*")


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Route messages matching ``pattern`` to this connection.

    ``since`` is the id of the last event the client saw: replay what matches
    after it from history first, then send a ``__recovered__`` frame.
    ``position``: the client asked for a ``__position__`` frame (the id to
    resume from while it has seen no event).
    """

    pattern: str
    since: str | None = None
    position: bool = False


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Stop routing messages matching ``pattern`` to this connection."""

    pattern: str


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish ``body`` on ``topic`` to the hub, on the client's behalf (already allowed)."""

    topic: str
    body: Any


@dataclass(frozen=True, slots=True)
class Reply:
    """Send ``frame`` (JSON text) to this client only, e.g. an error frame."""

    frame: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with ``code``; ``reason`` fits a close frame (<= 123 bytes)."""

    code: int
    reason: str


Action: TypeAlias = Subscribe | Unsubscribe | Publish | Reply | Close


def encode_event(topic: str, body_json: str, event_id: str, summary: str | None = None) -> str:
    """The frame delivering one message to a client.

    The body's JSON text is computed once per message and shared by every
    client, so it is spliced into the frame rather than encoded again; only
    the topic and the id are escaped here.

    Args:
        topic: the message's topic.
        body_json: the body as JSON text (must be valid JSON).
        event_id: the id the history gave the message.
        summary: what the message's schema says it means (``summary``), if it has one.

    Returns:
        ``{"topic":…,"body":…,"id":…}`` as text (with ``"summary":…`` when given).
    """
    head = '{"topic":' + _quote(topic) + ',"body":' + body_json + ',"id":' + _quote(event_id)
    return head + (',"summary":' + _quote(summary) + "}" if summary else "}")


def error_frame(error: str, frame: Any = None) -> str:
    """An ``__error__`` frame: ``{"topic": "__error__", "body": {"error": …, "frame": …}}``.

    Args:
        error: a sentence saying what is wrong and how to fix it.
        frame: what it refers to (usually the client's frame text); text is
            cut to :data:`ECHO_CHARS` characters, with anything that looks like
            a JWT replaced by ``<token>``.
    """
    if isinstance(frame, str):
        # A client may put its token where it does not belong; never send one back.
        frame = _JWT.sub("<token>", frame)
        if len(frame) > ECHO_CHARS:
            frame = frame[:ECHO_CHARS] + "…"
    return json.dumps({"topic": ERROR, "body": {"error": error, "frame": frame}})


def recovered_frame(pattern: str, recovered: bool) -> str:
    """The ``__recovered__`` frame sent after replaying history for ``pattern``.

    Args:
        pattern: the subscription that asked for a replay.
        recovered: False when the gap was larger than the history: the client
            missed messages and should reload.
    """
    return json.dumps({"topic": RECOVERED, "body": {"pattern": pattern, "recovered": recovered}})


def position_frame(pattern: str, event_id: str) -> str:
    """The ``__position__`` frame: where the history stood when ``pattern``'s subscription began.

    A client that has seen no event yet resumes from this id after a
    reconnection (``since``), so what was published meanwhile is replayed.
    The id ends the frame, as a message's does, so Server-Sent Events carry
    it as the stream's ``id:`` (the browser's ``Last-Event-ID``).

    >>> position_frame("org.#", "e1-7")
    '{"topic":"__position__","body":{"pattern":"org.#"},"id":"e1-7"}'
    """
    body = '{"pattern":' + _quote(pattern) + "}"
    return '{"topic":"' + POSITION + '","body":' + body + ',"id":' + _quote(event_id) + "}"
