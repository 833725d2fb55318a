"""How Moksha messages look on Redis, without any I/O: channels, globs, stream fields.

Pub/sub (fan-out): the channel is the topic and the message is the payload
itself (UTF-8 JSON, or the raw bytes), so a plain ``SUBSCRIBE`` client reads
exactly the body.  What a plain channel cannot carry (id, timestamp, headers,
a content type other than JSON) travels in a small JSON *meta* message
published just before it by the same Lua script (atomic), on
``<meta prefix><topic>``; a subscriber pairs each body with the meta message
that came right before it on its connection.  A body without one (from a
plain client) is still a message, with a new id.

Streams (consumer groups): one entry per message with the fields ``topic``,
``body``, ``id``, ``ts``, ``ct`` (only when not JSON) and ``h:<name>`` per
header; a plain ``XADD`` with ``topic`` and ``body`` alone is still a message.

Patterns: Redis globs let ``*`` cross dots, so a pattern is subscribed as the
glob of its literal start (:func:`glob_of`), broader than the AMQP pattern,
and :class:`~moksha.topics.TopicRouter` filters what arrives.  :func:`minimal`
keeps the subscribed channels and globs from overlapping, so each message
reaches a connection once.

>>> glob_of("org.*.event"), glob_of("org.#"), glob_of("org.x"), glob_of("#")
(('org.*', True), ('org*', True), ('org.x', False), ('*', True))
>>> sorted(minimal([("org*", True), ("org.x", False), ("org.y*", True), ("b[1]", False)]))
[('b[1]', False), ('org*', True)]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from moksha.message import JSON, Message
from moksha.topics import literal_prefix

__all__ = [
    "decode_entry",
    "encode_entry",
    "encode_meta",
    "from_pubsub",
    "glob_of",
    "minimal",
]

HEADER_FIELD = "h:"
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")

Subscribed = tuple[str, bool]
"""A channel name (False) or a glob (True), as subscribed on the connection."""


def escape(literal: str) -> str:
    """``literal`` with Redis glob characters escaped."""
    return _GLOB_SPECIAL.sub(r"\\\1", literal)


def glob_of(pattern: str) -> Subscribed:
    """The channel (no wildcard) or glob (its literal start + ``*``) covering ``pattern``."""
    prefix = literal_prefix(pattern)
    if prefix == pattern:
        return pattern, False
    return escape(prefix) + "*", True


def _literal_start(glob: str) -> str:
    return re.sub(r"\\(.)", r"\1", glob[:-1])


def minimal(subscribed: Iterable[Subscribed]) -> set[Subscribed]:
    """Drop every channel or glob that another glob of ``subscribed`` already covers."""
    items = set(subscribed)
    starts = {_literal_start(name) for name, is_glob in items if is_glob}
    kept: set[Subscribed] = set()
    for name, is_glob in items:
        literal = _literal_start(name) if is_glob else name
        covered = any(
            literal.startswith(start) and (start != literal or not is_glob) for start in starts
        )
        if not covered:
            kept.add((name, is_glob))
    return kept


# One encoder for every meta message (json.dumps with options makes a new one per call).
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode_meta(message: Message) -> bytes:
    """The meta message that goes before ``message``'s body on its channel."""
    meta: dict[str, object] = {"id": message.id, "ts": message.timestamp_s}
    if message.headers:
        meta["h"] = message.headers
    if message.content_type != JSON:
        meta["ct"] = message.content_type
    return _compact(meta).encode()


def from_pubsub(topic: str, payload: bytes, meta: bytes | None) -> Message:
    """The message of a body from ``topic``, with the meta message that preceded it (if any)."""
    if meta is None:
        return Message(topic, payload=payload)
    try:
        fields = json.loads(meta)
        headers = {str(k): str(v) for k, v in fields.get("h", {}).items()}
        return Message(
            topic,
            headers=headers,
            id=str(fields["id"]),
            timestamp=float(fields["ts"]),
            payload=payload,
            content_type=fields.get("ct", JSON),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return Message(topic, payload=payload)  # a stranger's meta: the body alone


def encode_entry(message: Message, topic: str | None = None) -> dict[str, bytes | str]:
    """The stream fields of ``message`` (``topic`` overrides its topic)."""
    fields: dict[str, bytes | str] = {
        "topic": topic or message.topic,
        "body": message.payload,
        "id": message.id,
        "ts": repr(message.timestamp_s),
    }
    if message.content_type != JSON:
        fields["ct"] = message.content_type
    for name, value in message.headers.items():
        fields[HEADER_FIELD + name] = value
    return fields


def decode_entry(fields: Mapping[bytes, bytes]) -> Message:
    """The message of a stream entry; a plain entry needs only ``topic`` and ``body``.

    Raises:
        ValueError: the entry has no ``topic`` field (it is no message).
    """
    text = {key.decode(errors="replace"): value for key, value in fields.items()}
    if "topic" not in text:
        raise ValueError("a stream entry without a 'topic' field")
    headers = {
        key[len(HEADER_FIELD) :]: value.decode(errors="replace")
        for key, value in text.items()
        if key.startswith(HEADER_FIELD)
    }
    timestamp = None
    if "ts" in text:
        try:
            timestamp = float(text["ts"])
        except ValueError:
            timestamp = None
    content_type = text["ct"].decode(errors="replace") if "ct" in text else None
    return Message(
        text["topic"].decode(errors="replace"),
        headers=headers,
        id=text["id"].decode(errors="replace") if "id" in text else None,
        timestamp=timestamp,
        payload=text.get("body", b""),
        content_type=content_type,
    )
