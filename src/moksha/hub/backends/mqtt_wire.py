"""Moksha topics, patterns and messages as MQTT 5 sees them (no I/O).

Topics map word for word: ``.`` ↔ ``/``.  Patterns become MQTT filters:
``*`` → ``+``; a trailing ``#`` → ``#`` (MQTT's ``a/#`` also matches ``a``,
as AMQP's ``a.#`` does).  A ``#`` anywhere else cannot be said in MQTT, so the
filter stops there with ``#`` (broader) and the backend filters what arrives
with :class:`moksha.topics.TopicRouter`, keeping AMQP's meaning exactly:

>>> mqtt_filter("org.*.event")
'org/+/event'
>>> mqtt_filter("org.#")
'org/#'
>>> mqtt_filter("org.#.event")
'org/#'
>>> cover(["org.a.*", "org.a.b.#"])
'org/a/#'
>>> moksha_topic("sensors/kitchen/temp")
'sensors.kitchen.temp'

The payload is the message body exactly as on AMQP (UTF-8 JSON, or raw
bytes); the id, timestamp and headers travel as MQTT 5 user properties, the
media type as the content type.  A message from a plain MQTT client, with
none of these, is still a message (a new id, received now).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers, writeUTF

from moksha.errors import ConfigError, MessageError
from moksha.message import Message

__all__ = [
    "RECORDS",
    "RETRY_PREFIX",
    "MQTTOptions",
    "cover",
    "decode",
    "encode",
    "internal",
    "moksha_topic",
    "mqtt_filter",
    "mqtt_topic",
]

ID = "moksha-id"
TIMESTAMP = "moksha-timestamp"
TOPIC = "moksha-topic"
"""Set on a retry put back for one consumer group: the topic it was published on."""
_OWN = frozenset({ID, TIMESTAMP, TOPIC})

RETRY_PREFIX = "moksha-retry"
"""MQTT topics ``moksha-retry/<group>`` carry retries back to one consumer group only."""
RECORDS = "moksha-groups"
"""Retained records of the consumer groups' sessions (:mod:`~moksha.hub.backends.mqtt_groups`)."""
_INTERNAL = (RETRY_PREFIX + "/", RECORDS + "/")


def internal(name: str) -> bool:
    """Whether MQTT topic ``name`` is Moksha's own bookkeeping, never a message to hand on."""
    return name.startswith(_INTERNAL)


_NOT_IN_WORDS = ("/", "+", "#", "\x00")


def mqtt_topic(topic: str) -> str:
    """The MQTT topic name of a Moksha topic.

    Raises:
        MessageError: the topic holds a character MQTT reserves (``/ + #``),
            or starts with ``$`` (the broker's own topics).
    """
    if topic.startswith("$") or any(char in topic for char in _NOT_IN_WORDS):
        raise MessageError(
            f"topic {topic!r} cannot travel on MQTT: its words must not contain '/', '+', "
            "'#' or NUL, nor may it start with '$'"
        )
    return topic.replace(".", "/")


def moksha_topic(name: str) -> str:
    """The Moksha topic of an MQTT topic name (levels become words)."""
    return name.replace("/", ".")


def mqtt_filter(pattern: str) -> str:
    """The narrowest MQTT filter receiving everything ``pattern`` matches (maybe more)."""
    levels: list[str] = []
    for word in pattern.split("."):
        if word == "#":
            levels.append("#")
            break
        levels.append("+" if word == "*" else mqtt_topic(word))
    return "/".join(levels)


def exact(pattern: str) -> bool:
    """Whether :func:`mqtt_filter` of ``pattern`` matches exactly what it matches."""
    words = pattern.split(".")
    return "#" not in words[:-1]


def cover(patterns: Sequence[str]) -> str:
    """One MQTT filter receiving everything any of ``patterns`` matches.

    A consumer group takes one shared subscription: two overlapping ones
    could hand one message to two different hubs of the group.
    """
    filters = sorted({mqtt_filter(pattern) for pattern in patterns})
    if len(filters) == 1:
        return filters[0]
    common: list[str] = []
    for levels in zip(*(f.split("/") for f in filters), strict=False):
        if len(set(levels)) != 1 or levels[0] in ("+", "#"):
            break
        common.append(levels[0])
    return "/".join([*common, "#"])


def encode(message: Message, topic: str | None = None) -> tuple[str, bytes, Properties]:
    """The MQTT topic name, payload and PUBLISH properties of ``message``.

    Args:
        topic: an MQTT topic to send it on instead of its own (a retry); the
            Moksha topic then travels in a user property.
    """
    user = [(ID, message.id), (TIMESTAMP, repr(message.timestamp_s))]
    if topic is not None:
        user.append((TOPIC, message.topic))
    user.extend(message.headers.items())
    properties = _PublishProperties(message.content_type, user)
    return topic or mqtt_topic(message.topic), message.payload, properties


class _PublishProperties(Properties):
    """A PUBLISH's content type and user properties, packed once with paho's own encoders.

    paho's generic :class:`Properties` spends ~100 µs a message in its name
    lookups (setting and packing); paho reads only :meth:`pack` of what we send.
    """

    _packed: bytes
    _summary: str

    def __init__(self, content_type: str, user: list[tuple[str, str]]) -> None:
        # No super().__init__(), and object's setattr (paho's checks each name against
        # its table): nothing but pack() and str() is read from a PUBLISH we send.
        packed = b"\x03" + writeUTF(content_type)  # type: ignore[no-untyped-call]
        for key, value in user:
            packed += b"\x26" + writeUTF(key) + writeUTF(value)  # type: ignore[no-untyped-call]
        length: bytes = VariableByteIntegers.encode(len(packed))  # type: ignore[no-untyped-call]
        object.__setattr__(self, "packetType", PacketTypes.PUBLISH)
        object.__setattr__(self, "_summary", f"ContentType={content_type}, UserProperty={user}")
        object.__setattr__(self, "_packed", length + packed)

    def pack(self) -> bytes:
        return self._packed

    def __str__(self) -> str:
        return f"[{self._summary}]"


def decode(name: str, payload: bytes | bytearray, properties: Properties | None) -> Message:
    """The message a PUBLISH to ``name`` carries (from Moksha or from a plain client)."""
    user: list[tuple[str, str]] = getattr(properties, "UserProperty", None) or []
    own = dict(pair for pair in user if pair[0] in _OWN)
    headers = {key: value for key, value in user if key not in _OWN}
    try:
        timestamp = float(own[TIMESTAMP])
    except (KeyError, ValueError):
        timestamp = time.time()
    return Message(
        own.get(TOPIC) or moksha_topic(name),
        headers=headers,
        id=own.get(ID),
        timestamp=timestamp,
        payload=bytes(payload),
        content_type=getattr(properties, "ContentType", None),
    )


@dataclass(frozen=True, slots=True)
class MQTTOptions:
    """What ``mqtt_url`` says: ``mqtt[s]://[user[:password]@]host[:port]``."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> MQTTOptions:
        """Read ``url``.

        Raises:
            ConfigError: not an ``mqtt://`` / ``mqtts://`` URL with a host.
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"mqtt_url is not a URL ({exc})", key="mqtt_url") from None
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(
                "mqtt_url must look like mqtt://user:password@host:1883 (mqtts:// for TLS)",
                key="mqtt_url",
            )
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )
