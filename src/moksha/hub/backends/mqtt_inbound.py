"""Received PUBLISH packets decoded without paho's per-message property cost.

paho-mqtt builds a generic :class:`~paho.mqtt.properties.Properties` for every
received MQTT 5 PUBLISH: ~40 µs a message in its constructor and name checks,
about as much as all the rest of a delivery (measured, i13d notes).  A
Moksha message carries a content type, user properties and (through our
subscriptions) subscription identifiers, so :class:`MokshaClient` reads those
three directly into the same paho ``Properties`` attributes.  Anything else
(another property, QoS 2, a packet this parser does not take) goes through
paho's own code, so the result is always what paho would have produced.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["MokshaClient", "read_publish_properties"]

_CONTENT_TYPE = 3
_SUBSCRIPTION_ID = 11
_USER_PROPERTY = 38
# paho's tables are the same for every instance: built once, shared (never mutated).
_TABLES = {
    key: value
    for key, value in vars(Properties(PacketTypes.PUBLISH)).items()  # type: ignore[no-untyped-call]
    if key != "packetType"
}


class _Unusual(Exception):
    """A packet for paho's own decoder."""


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 21:
            raise _Unusual
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _text(data: bytes, at: int) -> tuple[str, int]:
    end = at + 2 + int.from_bytes(data[at : at + 2], "big")
    if end > len(data):
        raise _Unusual
    return data[at + 2 : end].decode(), end


def read_publish_properties(data: bytes) -> tuple[Properties, int]:
    """A PUBLISH's properties from ``data`` (they start it): paho's object and bytes used.

    >>> body = bytes([3, 0, 4]) + b"text" + bytes([38, 0, 1]) + b"k" + bytes([0, 1]) + b"v"
    >>> raw = bytes([len(body) + 2]) + body + bytes([11, 2])
    >>> properties, used = read_publish_properties(raw + b"payload")
    >>> properties.ContentType, properties.UserProperty, properties.SubscriptionIdentifier
    ('text', [('k', 'v')], [2])
    >>> used == len(raw)
    True

    Raises:
        _Unusual: a property other than those three, or a malformed packet.
    """
    length, at = _varint(data, 0)
    end = at + length
    if end > len(data):
        raise _Unusual
    found: dict[str, Any] = {"packetType": PacketTypes.PUBLISH, **_TABLES}
    while at < end:
        ident = data[at]
        at += 1
        if ident == _USER_PROPERTY:
            key, at = _text(data, at)
            value, at = _text(data, at)
            found.setdefault("UserProperty", []).append((key, value))
        elif ident == _CONTENT_TYPE and "ContentType" not in found:
            found["ContentType"], at = _text(data, at)
        elif ident == _SUBSCRIPTION_ID:
            sid, at = _varint(data, at)
            found.setdefault("SubscriptionIdentifier", []).append(sid)
        else:
            raise _Unusual
    if at != end:
        raise _Unusual
    properties = Properties.__new__(Properties)
    vars(properties).update(found)
    return properties, end


class MokshaClient(paho.Client):
    """A paho client whose QoS 0 and 1 PUBLISH packets skip paho's generic property parser.

    It overrides paho's (private) ``_handle_publish``; should a paho release
    change what that method reads, any surprise falls back to paho's own.
    """

    def _handle_publish(self) -> MQTTErrorCode:
        try:
            message = self._read_publish()
        except Exception:  # QoS 2, another property, malformed, a changed paho: paho's way
            return super()._handle_publish()
        message.timestamp = paho.time_func()
        self._handle_on_message(message)
        if message.qos == 0 or self._manual_ack:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return self._send_puback(message.mid)

    def _read_publish(self) -> paho.MQTTMessage:
        if self._protocol != paho.MQTTv5:
            raise _Unusual
        header: int = self._in_packet["command"]
        packet = bytes(self._in_packet["packet"])
        qos = (header & 0x06) >> 1
        if qos > 1:
            raise _Unusual
        end = 2 + int.from_bytes(packet[:2], "big")
        if end > len(packet) or end == 2:
            raise _Unusual
        topic = packet[2:end]
        mid = 0
        if qos:
            mid = int.from_bytes(packet[end : end + 2], "big")
            end += 2
        properties, used = read_publish_properties(packet[end:])
        message = paho.MQTTMessage(mid=mid, topic=topic)
        message.dup = bool(header & 0x08)
        message.qos = qos
        message.retain = bool(header & 0x01)
        message.properties = properties
        message.payload = packet[end + used :]
        return message
