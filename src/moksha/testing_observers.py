"""The consumers under test in the ``moksha_hub`` fixture, and how their messages ended.

:func:`observed` makes a thin subclass of a consumer class (same name,
module and behaviour) whose ``consume`` tells the harness when it returned or
raised, so a test can wait until a consumer is done with a message instead of
racing it (:mod:`moksha.pytest_plugin`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moksha.hub.api import Consumer, Drop, Nack
from moksha.message import Message

__all__ = ["ConsumerError", "observed", "tested_class"]

_TESTED = "_moksha_tested"  # the class attribute naming the class under test


@dataclass(frozen=True)
class ConsumerError:
    """An exception a consumer under test raised.

    Attributes:
        consumer: the consumer class (as given to ``start``).
        message: the message it was consuming.
        exception: what it raised (its notes name the consumer and the message).
    """

    consumer: type[Consumer]
    message: Message
    exception: Exception


def tested_class(consumer: Consumer) -> type[Consumer] | None:
    """The class under test ``consumer`` runs for, or None (the recorder, another consumer)."""
    tested: type[Consumer] | None = getattr(type(consumer), _TESTED, None)
    return tested


def observed(
    cls: type[Consumer],
    *,
    finished: Callable[[type[Consumer], Message], None],
    failed: Callable[[type[Consumer], Message, Exception], None],
) -> type[Consumer]:
    """A subclass of ``cls`` (same name and module) reporting how each message ended.

    Args:
        cls: the consumer class under test.
        finished: called with ``cls`` and the message once ``consume`` returned
            (or raised :class:`~moksha.hub.api.Drop` or :class:`~moksha.hub.api.Nack`,
            which are on purpose), or ``validate`` rejected it.
        failed: called with ``cls``, the message and the exception ``consume`` raised.

    Returns:
        The subclass (``cls`` itself when it is not a Consumer class with a
        ``consume``, for the hub to refuse).

    """
    if not (isinstance(cls, type) and issubclass(cls, Consumer)) or cls.consume is Consumer.consume:
        return cls
    original = cls.consume

    def ended(consumer: Consumer, message: Message, error: Exception | None) -> None:
        if error is None or isinstance(error, Drop | Nack):  # Drop and Nack are on purpose
            finished(cls, message)
        else:
            failed(cls, message, error)

    namespace: dict[str, Any] = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        _TESTED: cls,
    }
    if inspect.iscoroutinefunction(original):

        async def consume_async(self: Consumer, message: Message) -> Any:
            try:
                result = await original(self, message)
            except Exception as exc:
                ended(self, message, exc)
                raise
            ended(self, message, None)
            return result

        namespace["consume"] = consume_async
    else:

        def consume(self: Consumer, message: Message) -> Any:
            try:
                result = original(self, message)
            except Exception as exc:
                ended(self, message, exc)
                raise
            ended(self, message, None)
            return result

        namespace["consume"] = consume
    if cls.validate is not Consumer.validate:
        validate = cls.validate

        def rejecting(self: Consumer, message: Message) -> None:
            try:
                validate(self, message)
            except Exception:
                finished(cls, message)  # rejected: it is done with the message
                raise

        namespace["validate"] = rejecting
    return type(cls.__name__, (cls,), namespace)
