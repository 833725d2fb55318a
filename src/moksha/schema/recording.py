"""fedora-messaging's record format: one JSON object a line, for ``moksha record`` / ``replay``.

Each line is what ``fedora-messaging record`` writes and ``fedora-messaging
publish FILE`` reads::

    {"body": {...}, "headers": {...}, "id": "...", "priority": 0, "queue": null,
     "topic": "org.example.event"}

Headers are written with fedora-messaging's types (``fedora_messaging_severity``
a number, ``fedora_messaging_user_<name>`` true, ...; see
:mod:`moksha.hub.backends.amqp_fedora`), so the files go both ways.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from moksha.errors import MessageError
from moksha.hub.backends.amqp_fedora import fedora_headers
from moksha.message import Message
from moksha.schema.registry import SchemaRegistry

__all__ = ["read_records", "record_line"]


def record_line(message: Message, schemas: SchemaRegistry, queue: str | None = None) -> str:
    """``message`` as one line of a record file (without the newline)."""
    headers = fedora_headers(message, schemas)
    record = {
        "topic": message.topic,
        "headers": headers,
        "id": message.id,
        "body": message.body,
        "queue": queue,
        "priority": headers.get("priority", 0),
    }
    return json.dumps(record, ensure_ascii=False, sort_keys=True)


def read_records(lines: Iterable[str], source: str = "the file") -> Iterator[Message]:
    """The messages of a record file, in order; blank lines are skipped.

    Raises:
        MessageError: a line is not a record (names ``source`` and the line number).
    """
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise MessageError(f"{source}, line {number}: not JSON ({exc})") from None
        problem = _record_problem(record)
        if problem is not None:
            raise MessageError(
                f"{source}, line {number}: {problem}; each line must be a JSON object with "
                "topic (text) and body, as fedora-messaging record writes"
            )
        headers = {str(k): _text(v) for k, v in (record.get("headers") or {}).items()}
        yield Message(record["topic"], record["body"], headers, record.get("id") or None)


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"a {type(record).__name__}, not an object"
    if not isinstance(record.get("topic"), str) or not record["topic"]:
        return "no topic"
    if "body" not in record:
        return "no body"
    if not isinstance(record.get("headers") or {}, dict):
        return "headers is not an object"
    return None


def _text(value: Any) -> str:
    """A typed header as Moksha's text headers hold it (as the AMQP backend reads them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)
