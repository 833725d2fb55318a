"""The installed schemas and which one a message is checked against.

Schema classes are found on two entry-point groups, the entry point's name
being the schema's name on the wire (``fedora_messaging_schema``):

* ``moksha.schema``: :class:`moksha.schema.Message` subclasses;
* ``fedora.messages``: fedora-messaging's message classes, used unchanged
  (fedora-messaging itself need not be installed for Moksha's own).

A message is checked against the schema its ``fedora_messaging_schema``
header names, else the schema whose ``topic`` (a pattern) matches its topic;
a message with neither is not checked, as in fedora-messaging.  A body that
does not match raises :class:`~moksha.errors.ValidationError`, which names the
topic, the schema and the failing path.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from moksha.errors import ValidationError
from moksha.message import Message
from moksha.plugins import installed
from moksha.schema.validators import BodyCheck, compile_check, schema_problem
from moksha.topics import TopicRouter

__all__ = [
    "BASE_SCHEMA",
    "SCHEMA_GROUPS",
    "SCHEMA_HEADER",
    "Schema",
    "SchemaRegistry",
    "installed_schemas",
    "schema_class_problem",
    "schema_from_file",
]

log = logging.getLogger("moksha.schema")

SCHEMA_GROUPS = ("moksha.schema", "fedora.messages")
"""The entry-point groups schema classes are found on."""

SCHEMA_HEADER = "fedora_messaging_schema"
"""The header naming a message's schema (fedora-messaging's)."""

BASE_SCHEMA = "base.message"
"""fedora-messaging's name for a message with no particular schema (not registered here)."""


@dataclass(eq=False)
class Schema:
    """One registered schema class.

    Attributes:
        name: its name on the wire (the entry point's name).
        cls: the class (:class:`moksha.schema.Message` or fedora-messaging's).
        package: the distribution that ships it, if known.
        group: the entry-point group it came from (None when registered in code).
    """

    name: str
    cls: type[Any]
    package: str | None = None
    group: str | None = None
    _check: BodyCheck | None = field(default=None, repr=False)

    @property
    def topic(self) -> str:
        """The topic (or pattern) it covers; empty: only messages naming it."""
        topic = getattr(self.cls, "topic", "")
        return topic if isinstance(topic, str) else ""

    @property
    def body_schema(self) -> dict[str, Any]:
        """The JSON Schema of the body."""
        schema: dict[str, Any] = getattr(self.cls, "body_schema", {})
        return schema

    @property
    def severity(self) -> int:
        """The class's severity (fedora-messaging's 10/20/30/40)."""
        return int(getattr(self.cls, "severity", 20))

    @property
    def dotted(self) -> str:
        """``module.Class``, for messages."""
        return f"{self.cls.__module__}.{self.cls.__qualname__}"

    def problem(self, body: Any) -> tuple[str, str] | None:
        """Where and why ``body`` fails this schema, or None when it passes."""
        if self._check is None:
            self._check = compile_check(self.body_schema)
        return self._check(body)

    def validate(self, topic: str, body: Any) -> None:
        """Raise :class:`~moksha.errors.ValidationError` unless ``body`` passes.

        Args:
            topic: the message's topic (named in the error).
            body: the decoded body.
        """
        problem = self.problem(body)
        if problem is not None:
            path, reason = problem
            raise ValidationError(
                f"the message on {topic!r} does not match schema {self.name!r} "
                f"({self.dotted}): at {path}: {reason}",
                topic=topic,
                schema=self.name,
                path=path,
                reason=reason,
            )

    def view(self, message: Message) -> Any:
        """An instance of the schema class for ``message`` (its summary, usernames, ...)."""
        headers = dict(message.headers)
        severity = headers.get("fedora_messaging_severity")
        return self.cls(
            body=message.body,
            headers=headers,
            topic=message.topic,
            severity=int(severity) if severity and severity.isdigit() else None,
        )


class SchemaRegistry:
    """Schemas by name and by topic.

    Args:
        schemas: the schemas; on a name given twice, the first wins (logged).
    """

    def __init__(self, schemas: Iterable[Schema] = ()) -> None:
        self.by_name: dict[str, Schema] = {}
        self._by_topic: TopicRouter[Schema] = TopicRouter()
        for schema in schemas:
            self.add(schema)

    def __len__(self) -> int:
        return len(self.by_name)

    def __iter__(self) -> Any:
        return iter(self.by_name.values())

    def add(self, schema: Schema) -> None:
        """Register ``schema`` (ignored, with a warning, when its name is taken)."""
        if schema.name in self.by_name:
            log.warning(
                "schema %r is registered twice (%s and %s); keeping the first",
                schema.name,
                self.by_name[schema.name].dotted,
                schema.dotted,
            )
            return
        self.by_name[schema.name] = schema
        if schema.topic:
            self._by_topic.add(schema.topic, schema)

    def for_topic(self, topic: str) -> Schema | None:
        """The schema whose topic pattern matches ``topic`` (the first registered), or None."""
        found = self._by_topic.match(topic)
        return found[0] if found else None

    def for_message(self, message: Message) -> Schema | None:
        """The schema ``message`` names in its header, else its topic's, else None."""
        name = message.headers.get(SCHEMA_HEADER)
        if name is not None:
            schema = self.by_name.get(name)
            if schema is not None:
                return schema
        return self.for_topic(message.topic)

    def add_class(self, cls: type[Any]) -> Schema:
        """Register a schema class given in code (not on an entry point); return its schema.

        Its name is its ``schema_name`` attribute, else ``module.Class``.  A class
        registered already (on an entry point, say) keeps that registration.

        Raises:
            TypeError: ``cls`` is not a schema class (the sentence says why).
        """
        for schema in self.by_name.values():
            if schema.cls is cls:
                return schema
        problem = schema_class_problem(cls)
        if problem is not None:
            raise TypeError(problem)
        name = getattr(cls, "schema_name", None) or f"{cls.__module__}.{cls.__qualname__}"
        schema = Schema(name, cls)
        self.add(schema)
        return schema

    def name_of(self, cls: type[Any]) -> str | None:
        """The registered name of a schema class, or None."""
        for schema in self.by_name.values():
            if schema.cls is cls:
                return schema.name
        return None


def schema_class_problem(obj: Any) -> str | None:
    """What is wrong with ``obj`` as a schema class (a sentence), or None."""
    if not isinstance(obj, type):
        return f"{obj!r} is not a class; point the entry point at a moksha.schema.Message subclass"
    if not hasattr(obj, "body_schema"):
        return f"{obj.__qualname__} has no body_schema; subclass moksha.schema.Message"
    problem = schema_problem(obj.body_schema)
    if problem is not None:
        return f"{obj.__qualname__}.body_schema: {problem}"
    return None


TOPIC_KEY = "x-moksha-topic"
"""In a plain JSON Schema file: the topic (or pattern) whose bodies it describes."""


def schema_from_file(path: str) -> type[Any]:
    """A schema class made from a plain JSON Schema file (``moksha.schema.files``).

    The file is a JSON Schema of the body with ``"x-moksha-topic"`` (a topic or
    pattern) and ``"title"`` (the schema's name; the file's name without
    ``.json`` when missing).

    Raises:
        ValueError: the file cannot be read, is not JSON, has no topic or is not a
            valid JSON Schema (the sentence says which).
    """
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ValueError(f"{path}: is not a JSON Schema (a JSON object)")
    topic = document.get(TOPIC_KEY)
    if not isinstance(topic, str) or not topic:
        raise ValueError(f'{path}: says no topic; add "{TOPIC_KEY}": "org.example.event"')
    name = document.get("title") or os.path.basename(path).removesuffix(".json")
    from moksha.schema.message import Message  # the base class of every schema

    cls = type(
        re.sub(r"\W", "_", str(name)),
        (Message,),
        {
            "topic": topic,
            "body_schema": document,
            "schema_name": str(name),
            "__doc__": document.get("description"),
        },
    )
    problem = schema_class_problem(cls)
    if problem is not None:
        raise ValueError(f"{path}: {problem}")
    return cls


@functools.cache
def installed_schemas() -> SchemaRegistry:
    """The schemas on the ``moksha.schema`` and ``fedora.messages`` entry points (read once).

    An entry point that cannot be imported, or whose class is not a schema,
    is logged as one ERROR and left out.
    """
    registry = SchemaRegistry()
    for group in SCHEMA_GROUPS:
        for entry in sorted(installed(group), key=lambda e: e.name):
            if entry.name == BASE_SCHEMA:
                continue  # says only "a JSON object": Moksha bodies may be any JSON value
            package = entry.dist.name if entry.dist is not None else None
            try:
                obj = entry.load()
            except Exception as exc:
                log.error(
                    "schema entry point %r (%s = %s) cannot be imported: %s",
                    entry.name,
                    group,
                    entry.value,
                    exc,
                )
                continue
            problem = schema_class_problem(obj)
            if problem is not None:
                log.error("schema entry point %r (%s) is skipped: %s", entry.name, group, problem)
                continue
            registry.add(Schema(entry.name, obj, package, group))
    return registry
