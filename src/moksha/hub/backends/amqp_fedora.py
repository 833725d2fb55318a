"""fedora-messaging's wire format on AMQP, both ways, without I/O.

What fedora-messaging's publishers write, and its consumers check
(``fedora_messaging.api.consume`` validates the headers and the body):

========================================  =====================================================
``content_type`` / ``content_encoding``   ``application/json`` / ``utf-8``
``delivery_mode`` / ``message_id``        2 (persistent) / the message's id
``fedora_messaging_schema``               the schema's name (its entry point), ``base.message``
                                          for a message without one
``fedora_messaging_schema_package``       the distribution that ships the schema, when known
``fedora_messaging_severity``             10, 20, 30 or 40 (a number)
``sent-at``                               ISO 8601 UTC, whole seconds
``priority``                              0
``fedora_messaging_user_<name>`` ...      ``true``, one per user, group (``_group_``), package
                                          (``_rpm_``), container, module and flatpak the
                                          schema class names
========================================  =====================================================

Moksha's headers are text; the AMQP headers above keep fedora-messaging's
types (numbers, booleans), converted back and forth here.  A message that
already carries these headers (one received from Fedora's bus and passed on)
keeps them.  Reading: a delivery without an AMQP ``timestamp`` (fedora-messaging
sets none) takes its time from ``sent-at``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from moksha.message import Message
from moksha.schema.registry import BASE_SCHEMA, SCHEMA_HEADER, Schema, SchemaRegistry

__all__ = ["BASE_SCHEMA", "ITEM_HEADERS", "fedora_headers", "sent_at", "timestamp_of"]

log = logging.getLogger("moksha.amqp")

SEVERITY_HEADER = "fedora_messaging_severity"
PACKAGE_HEADER = "fedora_messaging_schema_package"
SENT_AT_HEADER = "sent-at"

ITEM_HEADERS = (
    ("user", "usernames"),
    ("group", "groups"),
    ("rpm", "packages"),
    ("container", "containers"),
    ("module", "modules"),
    ("flatpak", "flatpaks"),
)
"""(header word, schema property): one ``fedora_messaging_<word>_<item>`` header per item."""

_ITEM_PREFIXES = tuple(f"fedora_messaging_{word}_" for word, _ in ITEM_HEADERS)
_NUMBERS = frozenset({SEVERITY_HEADER, "priority"})


def sent_at(timestamp_s: float) -> str:
    """fedora-messaging's ``sent-at``: ISO 8601 in UTC, without microseconds."""
    return datetime.fromtimestamp(int(timestamp_s), UTC).isoformat()


def fedora_headers(message: Message, schemas: SchemaRegistry) -> dict[str, Any]:
    """The AMQP headers of ``message`` in fedora-messaging's format (its own included)."""
    headers: dict[str, Any] = {name: _typed(name, value) for name, value in message.headers.items()}
    schema = schemas.for_message(message)
    if schema is None:
        headers.setdefault(SCHEMA_HEADER, BASE_SCHEMA)
        headers.setdefault(SEVERITY_HEADER, 20)
    else:
        headers.setdefault(SCHEMA_HEADER, schema.name)
        if schema.package:
            headers.setdefault(PACKAGE_HEADER, schema.package)
        headers.setdefault(SEVERITY_HEADER, schema.severity)
        headers.update(_item_headers(message, schema))
    headers.setdefault(SENT_AT_HEADER, sent_at(message.timestamp_s))
    headers.setdefault("priority", 0)
    return headers


def _item_headers(message: Message, schema: Schema) -> dict[str, bool]:
    try:
        view = schema.view(message)
    except Exception as exc:  # a schema class that cannot read this body: no item headers
        log.debug("no fedora item headers for %s: %s", message.topic, exc)
        return {}
    found: dict[str, bool] = {}
    for word, attribute in ITEM_HEADERS:
        try:
            items = getattr(view, attribute)
        except Exception:  # as fedora-messaging does: the message is probably invalid
            continue
        for item in items or ():
            found[f"fedora_messaging_{word}_{item}"] = True
    return found


def _typed(name: str, value: str) -> Any:
    """A text header as fedora-messaging types it on the wire."""
    if name in _NUMBERS and value.lstrip("-").isdigit():
        return int(value)
    if name.startswith(_ITEM_PREFIXES) and value in ("True", "true"):
        return True
    return value


def timestamp_of(headers: dict[str, str]) -> float | None:
    """The time in a ``sent-at`` header (seconds since the epoch), or None."""
    text = headers.get(SENT_AT_HEADER)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
