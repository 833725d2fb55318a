"""What the archive stores of a message: its row, its users and packages, its dead-letter facts.

Pure functions from :class:`~moksha.message.Message` to plain dicts, so the
recorder and the benchmark share them and tests check them without a database.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from moksha.config import Config
from moksha.message import JSON, Message
from moksha.schema import SchemaMessage

__all__ = [
    "DEAD_LETTER_HEADER",
    "REPLAYED_HEADER",
    "REQUEUED_HEADER",
    "Categorizer",
    "MessageRows",
    "message_rows",
]

DEAD_LETTER_HEADER = "moksha-dead-letter"
"""Set by the hub on a dead letter: the topic it failed on (same as ``moksha.hub.dead_letters``)."""
REPLAYED_HEADER = "moksha-replayed"
"""Set on a message ``moksha replay`` republished: the archived message's id."""
REQUEUED_HEADER = "moksha-requeued"
"""Set on a requeued dead letter: the dead letter's id."""

log = logging.getLogger("moksha.archive")

# fedora-messaging says who and what a message concerns in one header per name.
_USER_PREFIX = "fedora_messaging_user_"
_PACKAGE_PREFIX = "fedora_messaging_rpm_"
_AGENT_HEADER = "moksha-agent"
_PRIORITY_HEADER = "priority"


@dataclass(frozen=True, slots=True)
class Categorizer:
    """Datanommer's rule: a message's category is one word of its topic.

    Args:
        prefix: the bus's topic prefix (``org.fedoraproject.prod``): the word after it.
        word: an explicit index (from 0) of the word, instead.
    """

    prefix: str | None = None
    word: int | None = None

    @classmethod
    def from_config(cls, config: Config) -> Categorizer:
        return cls(config.archive_topic_prefix, config.archive_category_word)

    def __call__(self, topic: str) -> str | None:
        words = topic.split(".")
        index = self.word
        if index is None:
            index = 0
            if self.prefix and topic.startswith(self.prefix + "."):
                index = self.prefix.count(".") + 1
        return words[index] if index < len(words) else None


@dataclass(slots=True)
class MessageRows:
    """The rows one message becomes."""

    message: dict[str, Any]
    users: list[dict[str, str]]
    packages: list[dict[str, str]]
    dead: dict[str, Any] | None


def _text_of(payload: bytes) -> str:
    try:
        return payload.decode()
    except UnicodeDecodeError:
        # Not UTF-8: kept as JSON text of the bytes' code points, so nothing is lost.
        return json.dumps(payload.decode("latin-1"))


def _priority(headers: dict[str, str]) -> int:
    try:
        return int(headers.get(_PRIORITY_HEADER, 0))
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True, slots=True)
class _SchemaSays:
    """Who and what a message's schema class says it concerns (datanommer's source)."""

    users: list[str]
    packages: list[str]
    agent: str | None


def _schema_says(message: Message) -> _SchemaSays:
    if not isinstance(message, SchemaMessage):
        return _SchemaSays([], [], None)
    try:
        users, packages, agent = message.usernames, message.packages, message.agent_name
        return _SchemaSays(_names(users), _names(packages), agent if _is_name(agent) else None)
    except Exception:  # the schema's own code failed: the message is recorded all the same
        log.warning(
            "the schema %s failed to say who %s concerns; recorded without it",
            message.schema.name,
            message.id,
            exc_info=True,
        )
        return _SchemaSays([], [], None)


def _names(values: Iterable[Any] | None) -> list[str]:
    return [value for value in values or () if _is_name(value)]


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _agent(message: Message, schema_agent: str | None) -> str | None:
    agent = message.headers.get(_AGENT_HEADER) or schema_agent
    # The body is decoded only when it may name an agent: most do not, and decoding costs.
    if agent is None and b'"agent"' in message.payload and message.content_type == JSON:
        try:
            body = message.body
        except ValueError:
            return None
        if isinstance(body, dict) and isinstance(body.get("agent"), str):
            agent = body["agent"]
    return agent[:255] if agent else None


def message_rows(message: Message, categorize: Categorizer) -> MessageRows:
    """The rows of ``message``: its archive row, users, packages and dead-letter facts.

    Users and packages come from fedora-messaging's per-name headers
    (``fedora_messaging_user_<name>``, ``fedora_messaging_rpm_<name>``) and,
    for a message with a schema, from its schema class (``usernames``,
    ``packages``), as datanommer takes them; the agent from a ``moksha-agent``
    header, the schema class's ``agent_name`` or the body's ``agent`` field.
    """
    headers = message.headers
    msg_id = message.id
    timestamp = datetime.fromtimestamp(message.timestamp_s, UTC)
    schema = _schema_says(message)
    user_names = dict.fromkeys(
        [name[len(_USER_PREFIX) :] for name in headers if name.startswith(_USER_PREFIX)]
        + schema.users
    )
    package_names = dict.fromkeys(
        [name[len(_PACKAGE_PREFIX) :] for name in headers if name.startswith(_PACKAGE_PREFIX)]
        + schema.packages
    )
    users = [{"name": name[:255], "msg_id": msg_id} for name in user_names]
    packages = [{"name": name[:255], "msg_id": msg_id} for name in package_names]
    dead = None
    if DEAD_LETTER_HEADER in headers:
        try:
            attempts = int(headers.get("moksha-attempts", "0"))
        except ValueError:
            attempts = 0
        dead = {
            "msg_id": msg_id,
            "original_topic": headers[DEAD_LETTER_HEADER][:512],
            "original_id": headers.get("moksha-original-id"),
            "error": headers.get("moksha-error", ""),
            "attempts": attempts,
            "consumer": headers.get("moksha-consumer"),
            "timestamp": timestamp,
            "state": "dead",
        }
    row = {
        "msg_id": msg_id,
        "topic": message.topic,
        "category": categorize(message.topic),
        "timestamp": timestamp,
        "headers": headers,
        "body": _text_of(message.payload),
        "content_type": message.content_type,
        "agent": _agent(message, schema.agent),
        "priority": _priority(headers),
    }
    return MessageRows(row, users, packages, dead)
