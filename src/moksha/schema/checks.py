"""Where schemas are checked: on publish, and before a consumer sees a message.

``moksha.schema.mode`` says what a failure does:

=========  ==============================================================
enforce    publishing raises :class:`~moksha.errors.ValidationError` and
           sends nothing; a received message that fails goes to the
           dead-letter topic with the reason, never to ``consume()``
warn       the failure is logged (WARNING) and the message goes on
off        nothing is checked
=========  ==============================================================

A message is checked once: when this hub publishes it (on the memory bus its
consumers then receive it as published), or, read from a wire, before its
consumer sees it.

A consumer receives a message that has a schema as a :class:`SchemaMessage`:
still a :class:`moksha.message.Message`, which also answers what the schema
class says about it (``message.summary``, ``message.usernames``, ``str(message)``...).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from moksha.config import Config
from moksha.errors import ConfigError, ValidationError
from moksha.message import Message
from moksha.schema.registry import SCHEMA_HEADER, Schema, SchemaRegistry, schema_from_file

__all__ = ["MODES", "SchemaCheck", "SchemaMessage", "schema_files"]

log = logging.getLogger("moksha.schema")

MODES = ("enforce", "warn", "off")

TOPICS_CACHED = 10_000
"""Topics whose schema (or lack of one) is kept; past that the cache starts over."""

_MISSING: Any = object()

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

    Which schema a topic has is looked up once per topic and kept (at most
    :data:`TOPICS_CACHED` topics), so a topic without one costs a dict lookup.

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
        self._topics: dict[str, Schema | None] = {}
        self.free: set[str] = set()
        """Topics known to have no schema: the hub skips :meth:`outgoing` for them."""

    def add_classes(self, classes: Iterable[type[Any]]) -> None:
        """Check messages against these schema classes too (given in code, or declared
        by plugins in ``messages = [...]``).

        Raises:
            TypeError: one is not a schema class.
        """
        for cls in classes:
            self.registry.add_class(cls)
        self._topics.clear()
        self.free.clear()
        self.active = self.mode != "off" and len(self.registry) > 0

    def schema_of(self, message: Message) -> Schema | None:
        """The schema ``message`` names in its header, else its topic's (cached), else None."""
        headers = message.headers
        if headers and SCHEMA_HEADER in headers:
            return self.registry.for_message(message)
        topics = self._topics
        cached = topics.get(message.topic, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[no-any-return]
        schema = self.registry.for_topic(message.topic)
        if len(topics) >= TOPICS_CACHED:
            topics.clear()
        topics[message.topic] = schema
        return schema

    def outgoing(self, message: Message) -> Message:
        """Check a message about to be published; return what to publish.

        Returns:
            ``message`` itself when it has no schema, else it as a
            :class:`SchemaMessage` (consumers on this hub's memory bus get its view).

        Raises:
            ValidationError: in ``enforce`` mode, the body does not match its schema.
        """
        headers = message.headers
        if headers and SCHEMA_HEADER in headers:
            schema = self.schema_of(message)
        else:  # the common case, kept to one dict lookup for a topic without a schema
            schema = self._topics.get(message.topic, _MISSING)
            if schema is _MISSING:
                schema = self.schema_of(message)
        if schema is None:
            if not headers and len(self.free) < TOPICS_CACHED:
                self.free.add(message.topic)
            return message
        try:
            schema.validate(message.topic, message.body)
        except ValidationError as exc:
            if self.mode == "enforce":
                raise
            log.warning("published anyway (moksha.schema.mode = warn): %s", exc)
        return SchemaMessage(message, schema)

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

        Returns ``handler`` itself when checking is off and there is nothing to count.
        """
        if self.mode == "off" and received is None:
            return handler
        # (The hub guards only deliveries that may come from other processes: what it
        # published itself on its memory bus was checked, and wrapped, by outgoing.)
        schema_of = self.schema_of
        enforce = self.mode == "enforce"

        def guarded(message: Message) -> Awaitable[None] | None:
            encoded = message.encoded
            if received is not None and encoded:
                received(message)
            if not self.active:  # read each time: plugins may declare schemas after this
                return handler(message)
            schema = schema_of(message)
            if schema is None or DEAD_LETTER_HEADER in message.headers:
                return handler(message)
            if isinstance(message, SchemaMessage):  # checked and wrapped when published here
                return handler(message)
            # A message built here from a value was checked when this hub published it.
            if encoded:
                try:
                    schema.validate(message.topic, message.body)
                except ValidationError as exc:
                    if enforce:
                        log.warning("refused before consume, sent to the dead letters: %s", exc)
                        return dead_letter(message, exc)
                    log.warning("consumed anyway (moksha.schema.mode = warn): %s", exc)
            return handler(SchemaMessage(message, schema))

        return guarded


def schema_files(config: Config) -> list[type[Any]]:
    """The schema classes of the files ``moksha.schema.files`` names.

    Raises:
        ConfigError: a file cannot be used (names the key, its source and the file).
    """
    classes = []
    for path in config.schema_files:
        try:
            classes.append(schema_from_file(path))
        except ValueError as exc:
            raise ConfigError(
                str(exc), key="moksha.schema.files", source=config.source("moksha.schema.files")
            ) from None
    return classes
