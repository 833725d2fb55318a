"""ZeroMQ's wire format and subscription prefixes, without sockets.

One ZeroMQ multipart message per Moksha message::

    frame 1  topic, UTF-8 (ZeroMQ's subscription filter is a prefix of this frame)
    frame 2  body: UTF-8 JSON (raw bytes when the message was published raw)
    frame 3  only with zmq_metadata_frame: JSON {"id": str, "timestamp":
             seconds since the epoch, "headers": {str: str}}

Two frames are the original Moksha's wire, and what is sent by default, so its
hubs (txZMQ subscribers that read exactly ``[topic, json]``) and any program
sending ``[topic, json]`` interoperate both ways; a two-frame message gets a new
id and the time of arrival, and no headers.  The third frame is sent only when
asked for (it carries what bridges between backends need) and is always read.
Anything else -- one frame, more than three, a topic that is not UTF-8, a third
frame that is not that JSON object -- is a :class:`MalformedMessage`.

ZeroMQ filters subscriptions by byte prefix, so a pattern subscribes to
:func:`subscription_prefix` and :mod:`moksha.topics` decides the rest;
:func:`loose_match` is the original's looser rule, used only when
``zmq_strict`` is off.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from moksha.message import Message
from moksha.topics import literal_prefix

__all__ = [
    "MalformedMessage",
    "decode_frames",
    "encode_frames",
    "loose_match",
    "reaches",
    "subscription_prefix",
]

_raw_decode = json.JSONDecoder().raw_decode
_COMPACT = (",", ":")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_ANY_HOST = frozenset({"0.0.0.0", "*", "::", "[::]"})


class MalformedMessage(ValueError):
    """A multipart message that is not ``[topic, body]`` or ``[topic, body, meta]``."""


def encode_frames(message: Message, *, metadata: bool = False) -> list[bytes]:
    """The multipart frames carrying ``message``.

    Args:
        message: the message to send.
        metadata: add the third frame (id, timestamp, headers); without it the
            frames are the original's ``[topic, body]``.

    Returns:
        ``[topic, body]``, or ``[topic, body, meta]`` with ``metadata``.
    """
    frames = [message.topic.encode(), message.payload]
    if metadata:
        meta = {"id": message.id, "timestamp": message.timestamp_s, "headers": message.headers}
        frames.append(json.dumps(meta, separators=_COMPACT).encode())
    return frames


def decode_frames(frames: Sequence[bytes], topic: str | None = None) -> Message:
    """The message carried by two or three frames.

    Args:
        frames: the multipart message as received.
        topic: the first frame already decoded, when the caller has it (saves
            decoding it twice on the receive path).

    Raises:
        MalformedMessage: the frames are not a Moksha (or original Moksha) message.
    """
    if not 2 <= len(frames) <= 3:
        raise MalformedMessage(f"it has {len(frames)} frame(s), expected 2 or 3")
    if topic is None:
        try:
            topic = frames[0].decode()
        except UnicodeDecodeError:
            raise MalformedMessage("its topic frame is not UTF-8") from None
    if len(frames) == 2:
        return Message(topic, payload=frames[1])
    try:
        # raw_decode on str is ~2.5x faster than json.loads(bytes), which also
        # guesses the encoding and skips whitespace; that is the fallback.
        text = frames[2].decode()
        try:
            meta, end = _raw_decode(text)
        except ValueError:
            meta, end = json.loads(text), len(text)
    except ValueError:
        raise MalformedMessage("its third frame is not JSON") from None
    if end != len(text) and text[end:].strip():
        raise MalformedMessage("its third frame is not JSON")
    id_ = meta.get("id") if isinstance(meta, dict) else None
    timestamp = meta.get("timestamp") if isinstance(meta, dict) else None
    headers = (meta.get("headers") or {}) if isinstance(meta, dict) else None
    if (
        not isinstance(headers, dict)
        or not isinstance(id_, str | None)
        or isinstance(timestamp, bool)
        or not isinstance(timestamp, int | float | None)
    ):
        raise MalformedMessage('its third frame is not {"id", "timestamp", "headers"}')
    if headers:
        headers = {str(k): str(v) for k, v in headers.items()}
    return Message(topic, headers=headers, id=id_, timestamp=timestamp, payload=frames[1])


def loose_match(pattern: str, topic: str) -> bool:
    """``zmq_strict = false`` only: a wildcard-free pattern matches the topics it prefixes."""
    return topic.startswith(pattern)


def subscription_prefix(pattern: str) -> bytes:
    """What the SUB socket subscribes to for ``pattern``: a prefix of every topic it matches.

    :func:`~moksha.topics.literal_prefix`, except before a ``#`` that may match
    no word: ``a.#`` matches ``a``, so it subscribes to ``a``, not ``a.``.
    """
    prefix = literal_prefix(pattern)
    rest = pattern[len(prefix) :]
    if prefix and (rest == "#" or rest.startswith("#.")):
        prefix = prefix[:-1]
    return prefix.encode()


def _tcp_host_port(endpoint: str) -> tuple[str, str] | None:
    if not endpoint.startswith("tcp://"):
        return None
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    return host.rpartition(";")[2], port  # drop a "source;" part


def reaches(bound: str, target: str) -> bool:
    """Whether connecting to ``target`` reaches the socket bound at ``bound`` on this machine.

    Args:
        bound: the bound socket's ``LAST_ENDPOINT`` (``tcp://0.0.0.0:6543`` for ``tcp://*:6543``).
        target: an endpoint a socket of the same process connects to.
    """
    if bound == target:
        return True
    b, t = _tcp_host_port(bound), _tcp_host_port(target)
    if b is None or t is None or b[1] != t[1]:
        return False
    return b[0] == t[0] or (t[0] in _LOOPBACK and (b[0] in _ANY_HOST or b[0] in _LOOPBACK))
