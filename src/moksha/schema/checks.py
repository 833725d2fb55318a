"""Where schemas are checked: on publish, and before a consumer sees a message.

``moksha.schema.mode`` says what a failure does:

=========  ==============================================================
enforce    publishing raises :class:`~moksha.errors.ValidationError` and
           sends nothing; a received message that fails goes to the
           dead-letter topic with the reason, never to ``consume()``
warn       the failure is logged (WARNING) and the message goes on
off        nothing is checked
=========  ==============================================================

On the memory bus a message is checked once, when it is published: a message
built in this process from a value (never encoded) is not checked again
before consume; one read from a wire always is.

A consumer receives a message that has a schema as a :class:`SchemaMessage`:
still a :class:`moksha.message.Message`, which also answers what the schema
class says about it (``message.summary``, ``message.usernames``, ``str(message)``...).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from moksha.errors import ValidationError
from moksha.message import Message
from moksha.schema.registry import Schema, SchemaRegistry

__all__ = ["MODES", "SchemaCheck", "SchemaMessage"]

log = logging.getLogger("moksha.schema")

MODES = ("enforce", "warn", "off")

# What a SchemaMessage passes on to its schema class's instance.
VIEW_ATTRIBUTES = frozenset(
    {
        "summary",
        "url",
        "app_name",
        "app_icon",
        "agent_name",
        "agent_avatar",
        "usernames",
        "groups",
        "packages",
        "containers",
        "modules",
        "flatpaks",
        "severity",
    }
)

# Set on dead letters by the hub: they pass unchecked (they failed already, and why is said).
DEAD_LETTER_HEADER = "moksha-dead-letter"

Handler = Callable[[Message], Awaitable[None] | None]
DeadLetter = Callable[[Message, BaseException], Awaitable[None]]


class SchemaMessage(Message):
    """A message with a schema: a :class:`Message` that also answers as its schema class.

    Attributes:
        schema: the schema it matched.
    """

    __slots__ = ("_view", "schema")

    def __init__(self, message: Message, schema: Schema) -> None:
        super().__init__(
            message.topic, message.body, message.headers, message.id, message.timestamp_s
        )
        self.schema = schema
        self._view: Any = None

    @property
    def view(self) -> Any:
        """The schema class's instance for this message (made on first use)."""
        if self._view is None:
            self._view = self.schema.view(self)
        return self._view

    def __getattr__(self, name: str) -> Any:
        if name in VIEW_ATTRIBUTES:
            return getattr(self.view, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __str__(self) -> str:
        return str(self.view)


class SchemaCheck:
    """The schema checks of one hub.

    Args:
        registry: the schemas.
        mode: ``enforce``, ``warn`` or ``off``.
    """

    def __init__(self, registry: SchemaRegistry, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.registry = SchemaRegistry(registry)  # a copy: classes given in code join it
        self.mode = mode
        self.active = mode != "off" and len(self.registry) > 0

    def add_classes(self, classes: Iterable[type[Any]]) -> None:
        """Check messages against these schema classes too (given in code, or declared
        by plugins in ``messages = [...]``).

        Raises:
            TypeError: one is not a schema class.
        """
        for cls in classes:
            self.registry.add_class(cls)
        self.active = self.mode != "off" and len(self.registry) > 0

    def outgoing(self, message: Message) -> None:
        """Check a message about to be published.

        Raises:
            ValidationError: in ``enforce`` mode, the body does not match its schema.
        """
        schema = self.registry.for_message(message)
        if schema is None:
            return
        try:
            schema.validate(message.topic, message.body)
        except ValidationError as exc:
            if self.mode == "enforce":
                raise
            log.warning("published anyway (moksha.schema.mode = warn): %s", exc)

    def guard(
        self,
        handler: Handler,
        dead_letter: DeadLetter,
        received: Callable[[Message], None] | None = None,
    ) -> Handler:
        """``handler`` behind the check: what fails goes to ``dead_letter`` in enforce mode.

        Args:
            handler: the consumer's handler.
            dead_letter: takes a message that failed, with the error.
            received: called with each message read from a wire (the topic catalog).

        Returns ``handler`` itself when there is nothing to check or count.
        """
        if not self.active and received is None:
            return handler
        registry = self.registry
        enforce = self.mode == "enforce"
        active = self.active

        def guarded(message: Message) -> Awaitable[None] | None:
            if received is not None and message.encoded:
                received(message)
            if not active:
                return handler(message)
            schema = registry.for_message(message)
            if schema is None or DEAD_LETTER_HEADER in message.headers:
                return handler(message)
            try:
                # A message built here from a value was checked when this hub published it.
                if message.encoded:
                    schema.validate(message.topic, message.body)
            except ValidationError as exc:
                if enforce:
                    log.warning("refused before consume, sent to the dead letters: %s", exc)
                    return dead_letter(message, exc)
                log.warning("consumed anyway (moksha.schema.mode = warn): %s", exc)
            return handler(SchemaMessage(message, schema))

        return guarded
