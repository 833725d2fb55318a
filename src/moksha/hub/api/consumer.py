"""The consumer plugin API, as original Moksha plugins use it.

A consumer reacts to every message on its topics::

    from moksha.hub.api import Consumer

    class Thermometer(Consumer):
        topic = "org.example.sensor.*"

        def consume(self, message):
            if message["body"]["celsius"] > 30:
                self.send_message("org.example.alert", {"too": "hot"})

Register the class on the ``moksha.consumer`` entry-point group (or pass it to
``CentralMokshaHub(consumers=[...])``) and the hub instantiates it with itself
as the only argument.

``consume`` may be a plain method (run in worker threads,
``moksha.workers_per_consumer`` at a time, in order when that is 1) or an
``async def`` (run on the event loop, at most ``moksha.workers_per_consumer``
at a time).  An exception in any hook is logged and counted and never stops
the hub.  When ``consume`` raises, the message is retried (``moksha.max_retries``
times) and then sent to the dead-letter topic; raise :class:`Drop` to discard
it instead, :class:`Nack` to dead-letter it at once.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

from moksha.topics import topics_of

if TYPE_CHECKING:
    from moksha.hub.hub import MokshaHub
    from moksha.message import Message

__all__ = ["Consumer", "Drop", "Nack"]

log = logging.getLogger("moksha.hub")

# How many processing times __json__ reports at most (the newest).
TIMES_KEPT = 1000


class Drop(Exception):
    """Raise from ``consume`` to discard the message: no retry, no dead letter."""


class Nack(Exception):
    """Raise from ``consume`` to reject the message: straight to the dead-letter topic."""


class Consumer:
    """Base class of message consumers.

    Attributes:
        topic: a pattern or a list of patterns to consume (may be set in ``__init__``).
        jsonify: when True (default), ``message["body"]`` is the decoded JSON
            value; when False, the raw text (``str``, or ``bytes`` if not UTF-8).
        hub: the hub running this consumer.
        app_db: the name of the consumer's own database, or None; when set,
            ``self.engine`` and ``self.Session`` are ready after ``__init__``
            and ``init_model(engine)`` has run (see :mod:`moksha.app_db`).
    """

    topic: str | list[str] = ""
    jsonify: bool = True
    app_db: str | None = None

    hub: MokshaHub
    _initialized: bool = False
    queue_depth: int | None = None
    """Messages waiting for it in the broker (its durable queue), as the hub last read
    them; None where the backend cannot tell (set by the hub)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # The base class initialises itself here too, so a subclass whose
        # __init__ forgets super().__init__(hub) still has counters, a hub and a log.
        self = super().__new__(cls)
        self._init_base(args[0] if args else kwargs.get("hub"))
        return self

    def __init__(self, hub: MokshaHub) -> None:
        self._init_base(hub)

    def _init_base(self, hub: MokshaHub | None) -> None:
        self.hub = hub  # type: ignore[assignment]  # None only until __init__ runs
        self.log = log
        self.headcount_in = 0
        self.headcount_out = 0
        self._exception_count = 0
        self._times: deque[float] = deque(maxlen=TIMES_KEPT)
        self._backlog_size: Callable[[], int] = lambda: 0
        self._initialized = True
        if self.app_db is not None and hub is not None:
            hub.app_databases.attach(self)

    @property
    def topics(self) -> list[str]:
        """``topic`` as a list of patterns."""
        return topics_of(self.topic)

    def validate(self, message: Message) -> None:
        """Check a message before it is consumed; raise to reject (skip) it."""

    def pre_consume(self, message: Message) -> None:
        """Called before :meth:`consume` for every valid message."""

    def consume(self, message: Message) -> Any:
        """Handle one message.  Override this (a plain method or ``async def``).

        Raises:
            NotImplementedError: the subclass did not override it.
        """
        raise NotImplementedError(f"{type(self).__name__} must define consume(self, message)")

    def post_consume(self, message: Message) -> None:
        """Called after :meth:`consume`, even when it raised."""

    def send_message(self, topic: str, message: Any) -> None:
        """Queue ``message`` for publishing on ``topic`` (send failures are logged).

        It goes on the hub's bounded outgoing queue (``moksha.outgoing_queue``),
        in order.  From a plain ``consume`` (a worker thread) this waits while
        that queue is full; from an ``async def consume`` it returns at once and
        the hub waits for room before handing the consumer its next message
        (``await self.hub.publish(topic, body)`` awaits the publish itself).

        Raises:
            BackendUnavailable: the queue stayed full for ``moksha.publish_timeout``
                seconds (the message is not sent; ``consume`` fails and is retried).
        """
        self.hub.post(topic, message)

    def stop(self) -> None:
        """Called once when the hub shuts down, after the backlog drained."""

    def stats(self) -> dict[str, Any]:
        """Statistics since the previous :meth:`__json__` call, without resetting them."""
        return {
            "name": type(self).__name__,
            "module": type(self).__module__,
            "topic": self.topic,
            "initialized": self._initialized,
            "exceptions": self._exception_count,
            "jsonify": self.jsonify,
            "backlog": self._backlog_size() if self._initialized else None,
            "headcount_out": self.headcount_out,
            "headcount_in": self.headcount_in,
            "times": list(self._times),
        }

    def __json__(self) -> dict[str, Any]:
        """Statistics since the previous call, as the original Moksha reported them.

        The counters (headcounts, exceptions, times) are reset by each call;
        :meth:`stats` reads them without resetting.
        """
        results = self.stats()
        self.headcount_out = self.headcount_in = 0
        self._exception_count = 0
        self._times.clear()
        return results

    def __repr__(self) -> str:
        return f"<{type(self).__name__} topic={self.topic!r}>"
