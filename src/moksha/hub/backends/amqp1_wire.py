"""Moksha messages as AMQP 1.0 messages on RabbitMQ's ``rabbitmq_amqp1_0`` plugin, no I/O.

Out: a sender attached to ``/exchange/<amqp_exchange>`` publishes each message
with ``subject`` = the topic (the routing key), the payload as one ``data``
section, ``content_type``, ``message_id``, ``creation_time`` and the headers
as application properties -- so AMQP 0-9-1 consumers of ``amq.topic`` get the
topic as routing key and the JSON body as their body.

In: a receiver on ``/topic/<pattern>`` (the plugin binds a server-named queue
to ``amq.topic`` with the pattern) gets both kinds.  The topic is the
``subject`` (the plugin sets it to the routing key of a 0-9-1 message, but
passes a 1.0 message's on unchanged: plain senders must set it), else the
``to`` address, else the link's pattern when it has no wildcard; a body that
is not one data section (a plain client sending an AMQP string or map) is
taken as its JSON value.  Messages from AMQP 0-9-1 carry
no headers here: the plugin drops them on the way to 1.0.

>>> address_topic("/topic/org.x.event"), address_topic("/exchange/amq.topic/a.b")
('org.x.event', 'a.b')
"""

from __future__ import annotations

import json
from typing import Any

from proton import Message as AMQPMessage

from moksha.message import JSON, Message, encode_body

__all__ = ["address_topic", "decode", "encode", "from_amqp1", "to_amqp1"]

_ADDRESS_PREFIXES = ("/topic/", "/exchange/amq.topic/")


def address_topic(address: str | None) -> str | None:
    """The routing key in a ``/topic/<key>`` or ``/exchange/amq.topic/<key>`` address."""
    for prefix in _ADDRESS_PREFIXES:
        if address and address.startswith(prefix):
            return address[len(prefix) :]
    return None


def to_amqp1(message: Message) -> AMQPMessage:
    """The AMQP 1.0 message that carries ``message`` (see the module docstring)."""
    out = AMQPMessage(
        body=message.payload,
        subject=message.topic,
        id=message.id,
        content_type=message.content_type,
        creation_time=message.timestamp_s,
        properties=dict(message.headers) if message.headers else None,
    )
    out.inferred = True  # bytes as a data section, not an AMQP binary value
    return out


def encode(message: Message) -> bytes:
    """``message`` as the bytes of one AMQP 1.0 message (what a sending link streams)."""
    return bytes(to_amqp1(message).encode())


def decode(payload: bytes, fallback_topic: str | None) -> Message:
    """The Moksha message in the bytes of one AMQP 1.0 delivery (see :func:`from_amqp1`)."""
    incoming = AMQPMessage()
    incoming.decode(payload)
    return from_amqp1(incoming, fallback_topic)


def from_amqp1(incoming: AMQPMessage, fallback_topic: str | None) -> Message:
    """The Moksha message of an AMQP 1.0 message (see the module docstring)."""
    topic = incoming.subject or address_topic(incoming.address) or fallback_topic or ""
    body: Any = incoming.body
    if isinstance(body, memoryview):
        body = bytes(body)
    content_type: str | None
    if isinstance(body, bytes):
        payload = body
        content_type = str(incoming.content_type) if incoming.content_type else None
    elif isinstance(body, str) and incoming.content_type == JSON:
        payload, content_type = body.encode(), JSON
    else:
        payload, content_type = encode_body(_jsonable(body)), JSON
    properties: dict[Any, Any] = incoming.properties or {}
    headers = {str(k): str(v) for k, v in properties.items()}
    return Message(
        str(topic),
        headers=headers,
        id=str(incoming.id) if incoming.id is not None else None,
        timestamp=float(incoming.creation_time) if incoming.creation_time else None,
        payload=payload,
        content_type=content_type,
    )


def _jsonable(value: Any) -> Any:
    """An AMQP value as plain JSON types (symbols, UUIDs and the like as text)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    try:
        json.dumps(value)
    except TypeError:
        return str(value)
    return value
