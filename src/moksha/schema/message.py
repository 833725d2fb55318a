"""The base class of a message schema, shaped like fedora-messaging's.

A schema class says which topics it covers and what their bodies look like::

    from moksha.schema import Message

    class BuildDone(Message):
        topic = "org.example.build.done"
        body_schema = {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "required": ["package", "owner"],
            "properties": {"package": {"type": "string"}, "owner": {"type": "string"}},
        }

        @property
        def summary(self) -> str:
            return f"{self.body['owner']} built {self.body['package']}"

        @property
        def usernames(self) -> list[str]:
            return [self.body["owner"]]

and is registered on the ``moksha.schema`` entry point (``build.done =
"pkg.schemas:BuildDone"``; the entry point's name is the schema's name on the
wire).  Classes registered on fedora-messaging's ``fedora.messages`` entry point
are used the same way, unchanged: they have the same attributes and
constructor, which is all Moksha relies on.

``topic`` may be a pattern (``org.example.build.*``); a class with an empty
topic applies only to messages that name it in their
``fedora_messaging_schema`` header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = ["DEBUG", "ERROR", "INFO", "SEVERITIES", "WARNING", "Message"]

DEBUG = 10
INFO = 20
WARNING = 30
ERROR = 40
SEVERITIES = (DEBUG, INFO, WARNING, ERROR)
"""fedora-messaging's severities (the ``fedora_messaging_severity`` header)."""


class Message:
    """A message seen through its schema: the body plus what it means to people.

    Args:
        body: the message body (a JSON object for schema'd messages).
        headers: the message's headers.
        topic: the topic it was sent on; the class's ``topic`` when omitted.
        severity: one of :data:`SEVERITIES`; the class's when omitted.

    Class attributes (override them):
        topic: the topic, or a pattern of topics, this schema covers.
        body_schema: the JSON Schema the body must match.
        severity: how much the message matters (:data:`INFO` unless said).
        deprecated: whether a newer schema replaces this one.
    """

    topic: str = ""
    severity: int = INFO
    deprecated: bool = False
    body_schema: ClassVar[dict[str, Any]] = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "description": "Schema for message body",
        "type": "object",
    }

    def __init__(
        self,
        body: Any = None,
        headers: Mapping[str, Any] | None = None,
        topic: str | None = None,
        severity: int | None = None,
    ) -> None:
        self.body = {} if body is None else body
        self.headers = dict(headers or {})
        if topic:
            self.topic = topic
        if severity:
            self.severity = severity

    @property
    def summary(self) -> str:
        """One line for people (feeds, notifications); the topic unless overridden."""
        return self.topic

    def __str__(self) -> str:
        """The full human-readable text; the summary unless overridden."""
        return self.summary

    @property
    def url(self) -> str | None:
        """A web page about what happened, if there is one."""
        return None

    @property
    def app_name(self) -> str | None:
        """The application that sent it."""
        return None

    @property
    def app_icon(self) -> str | None:
        """An icon URL for that application."""
        return None

    @property
    def agent_name(self) -> str | None:
        """The user who caused it."""
        return None

    @property
    def agent_avatar(self) -> str | None:
        """An avatar URL for that user."""
        return None

    @property
    def usernames(self) -> list[str]:
        """Users it concerns (``fedora_messaging_user_<name>`` headers on AMQP)."""
        return []

    @property
    def groups(self) -> list[str]:
        """Groups it concerns (``fedora_messaging_group_<name>``)."""
        return []

    @property
    def packages(self) -> list[str]:
        """Packages it concerns (``fedora_messaging_rpm_<name>``)."""
        return []

    @property
    def containers(self) -> list[str]:
        """Containers it concerns (``fedora_messaging_container_<name>``)."""
        return []

    @property
    def modules(self) -> list[str]:
        """Modules it concerns (``fedora_messaging_module_<name>``)."""
        return []

    @property
    def flatpaks(self) -> list[str]:
        """Flatpaks it concerns (``fedora_messaging_flatpak_<name>``)."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(topic={self.topic!r}, body={self.body!r})"
