"""Moksha topics, patterns and messages as NATS sees them (no I/O).

A topic is its own NATS subject.  Pattern words map one for one, except
``#``: NATS's ``>`` needs one or more tokens and only comes last, so a
trailing ``#`` becomes the bare prefix plus ``prefix.>``, and a ``#``
elsewhere subscribes to the broader ``prefix.>`` (the backend filters what
arrives with :class:`moksha.topics.TopicRouter`, keeping AMQP's meaning):

>>> subjects("org.*.event")
['org.*.event']
>>> subjects("org.#")
['org', 'org.>']
>>> subjects("org.#.event")
['org', 'org.>']
>>> cover(["org.a.*", "org.a.b.#"])
'org.a.>'
>>> cover(["org.a", "org.#"]) is None
True

The payload is the body as on AMQP (UTF-8 JSON, or raw bytes); the id,
timestamp, media type and headers travel as NATS headers.  A message from a
plain NATS client, without them, is still a message.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from moksha.errors import MessageError
from moksha.message import Message

__all__ = ["cover", "decode", "encode", "in_subjects", "subjects"]

ID = "moksha-id"
TIMESTAMP = "moksha-timestamp"
CONTENT_TYPE = "Content-Type"
TOPIC = "moksha-topic"
"""Set on a retry sent back to one consumer group: the topic it was published on."""
_OWN = frozenset({ID, TIMESTAMP, CONTENT_TYPE, TOPIC})
_SPACE = re.compile(r"\s")


def subject(topic: str) -> str:
    """The NATS subject of a Moksha topic.

    Raises:
        MessageError: the topic has an empty word, white space, or a word
            NATS reserves (``*``, ``>``).
    """
    words = topic.split(".")
    if "" in words or "*" in words or ">" in words or _SPACE.search(topic):
        raise MessageError(
            f"topic {topic!r} cannot travel on NATS: its words must be non-empty, "
            "without white space, and not '*' or '>'"
        )
    return topic


def subjects(pattern: str) -> list[str]:
    """NATS subjects that together receive everything ``pattern`` matches (maybe more)."""
    words = pattern.split(".")
    if "#" not in words:
        return [pattern]
    prefix = words[: words.index("#")]
    if not prefix:
        return [">"]
    bare = ".".join(prefix)
    return [bare, f"{bare}.>"]


def cover(patterns: Sequence[str]) -> str | None:
    """One subject receiving everything any of ``patterns`` matches; None for "all".

    A JetStream consumer (NATS 2.9) filters on one subject only.
    """
    unique = sorted(set(patterns))
    if len(unique) == 1 and "#" not in unique[0].split("."):
        return unique[0]
    split = [p.split(".") for p in unique]
    prefix: list[str] = []
    for words in zip(*split, strict=False):
        if len(set(words)) != 1 or words[0] in ("*", "#"):
            break
        prefix.append(words[0])
    # "p.>" misses "p" itself: shorten while a pattern may match exactly the prefix.
    while prefix and any(
        len(w) == len(prefix) or (w[len(prefix)] == "#" and len(w) == len(prefix) + 1)
        for w in split
    ):
        prefix.pop()
    return ".".join([*prefix, ">"]) if prefix else None


def in_subjects(topic: str, spaces: Sequence[str]) -> bool:
    """Whether ``topic`` falls in one of the NATS subject ``spaces`` (``*`` / ``>``)."""
    words = topic.split(".")
    for space in spaces:
        tokens = space.split(".")
        for i, token in enumerate(tokens):
            if token == ">":
                if len(words) > i:
                    return True
                break
            if i >= len(words) or (token != "*" and token != words[i]):
                break
        else:
            if len(tokens) == len(words):
                return True
    return False


def encode(message: Message, to: str | None = None) -> tuple[str, bytes, dict[str, str]]:
    """The subject, payload and headers of ``message``.

    Args:
        to: a subject to send it on instead of its topic (a retry); the topic
            then travels in a header.
    """
    headers = {
        **message.headers,
        ID: message.id,
        TIMESTAMP: repr(message.timestamp_s),
        CONTENT_TYPE: message.content_type,
    }
    if to is not None:
        headers[TOPIC] = message.topic
        return to, message.payload, headers
    return subject(message.topic), message.payload, headers


def decode(name: str, payload: bytes, headers: dict[str, str] | None) -> Message:
    """The message a NATS delivery on subject ``name`` carries."""
    headers = headers or {}
    try:
        timestamp = float(headers[TIMESTAMP])
    except (KeyError, ValueError):
        timestamp = time.time()
    return Message(
        headers.get(TOPIC) or name,
        headers={key: value for key, value in headers.items() if key not in _OWN},
        id=headers.get(ID),
        timestamp=timestamp,
        payload=payload,
        content_type=headers.get(CONTENT_TYPE),
    )


def within(subject: str, spaces: Sequence[str]) -> bool:
    """Whether every subject the NATS ``subject`` (maybe a wildcard) matches is in ``spaces``."""
    tokens = subject.split(".")
    for space in spaces:
        want = space.split(".")
        for i, token in enumerate(want):
            if token == ">":
                if len(tokens) > i:
                    return True
                break
            if i >= len(tokens) or tokens[i] == ">" or (token != "*" and token != tokens[i]):
                break
        else:
            if len(want) == len(tokens):
                return True
    return False
