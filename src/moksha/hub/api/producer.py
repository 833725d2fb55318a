"""The producer plugin API, as original Moksha plugins use it.

A producer puts messages on the bus.  :class:`PollingProducer` wakes up every
``frequency`` and calls :meth:`PollingProducer.poll`::

    from datetime import timedelta
    from moksha.hub.api import PollingProducer

    class Clock(PollingProducer):
        frequency = timedelta(seconds=1)
        now = True   # poll once at start, too

        def poll(self):
            self.send_message("org.example.clock.tick", {"time": time.time()})

Register it on the ``moksha.producer`` (or ``moksha.stream``) entry-point group
or pass it to ``CentralMokshaHub(producers=[...])``.  ``poll`` may be a plain
method (run in a worker thread) or an ``async def`` (run on the event loop).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from moksha.config import Config
    from moksha.hub.hub import MokshaHub

__all__ = ["PollingProducer", "Producer"]

log = logging.getLogger("moksha.hub")


class Producer:
    """Base class of producers.  The hub instantiates it with itself as the argument.

    Attributes:
        app_db: the name of the producer's own database, or None; when set,
            ``self.engine`` and ``self.Session`` are ready after ``__init__``
            and ``init_model(engine)`` has run (see :mod:`moksha.app_db`).
    """

    hub: MokshaHub
    app_db: str | None = None
    _initialized: bool = False
    _exception_count: int = 0

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # The base class initialises itself here too, so a subclass whose
        # __init__ forgets super().__init__(hub) still works.
        self = super().__new__(cls)
        self._init_base(args[0] if args else kwargs.get("hub"))
        return self

    def __init__(self, hub: MokshaHub) -> None:
        self._init_base(hub)

    def _init_base(self, hub: MokshaHub | None) -> None:
        self.hub = hub  # type: ignore[assignment]  # None only until __init__ runs
        self.log = log
        self._initialized = True
        if self.app_db is not None and hub is not None:
            hub.app_databases.attach(self)

    @classmethod
    def enabled(cls, config: Config) -> bool:
        """Whether the hub should run this producer with ``config`` (default: yes).

        A producer installed everywhere but wanted only sometimes (the feed
        stream) returns False, so it is neither created nor listed.
        """
        return True

    def send_message(self, topic: str, message: Any) -> None:
        """Queue ``message`` for publishing on ``topic``, on the hub's outgoing queue.

        From a worker thread (a plain ``poll``) this waits while that bounded
        queue is full, so a fast producer is slowed to the pace of its
        consumers; on the event loop it queues the message and returns.
        Failures are logged, never raised, as in the original Moksha.
        """
        try:
            self.hub.post(topic, message)
        except Exception as exc:
            log.error("%s cannot send a message to %s: %s", type(self).__name__, topic, exc)

    def stop(self) -> None:
        """Called once when the hub shuts down."""

    def __json__(self) -> dict[str, Any]:
        """Name, module, whether it started, and consecutive exceptions."""
        return {
            "name": type(self).__name__,
            "module": type(self).__module__,
            "initialized": self._initialized,
            "exceptions": self._exception_count,
        }


class PollingProducer(Producer):
    """A producer whose :meth:`poll` the hub calls every :attr:`frequency`.

    Attributes:
        frequency: seconds (int/float) or a :class:`~datetime.timedelta` between
            polls; ``0`` polls back to back.
        now: poll once immediately at start, before the first wait.
        cluster_singleton: in a cluster (``moksha.cluster.url``), poll on one node
            only, the leader of this producer (True, the default); False polls on
            every node.
    """

    frequency: float | timedelta | None = None
    now: bool = False
    die: bool = False
    cluster_singleton: bool = True

    def _init_base(self, hub: MokshaHub | None) -> None:
        super()._init_base(hub)
        if isinstance(self.frequency, timedelta):
            self.frequency = self.frequency.total_seconds()
        self._last_ran: float | None = None
        # In a cluster: whether this node runs it (set by the hub); None on one node.
        self._leader: bool | None = None
        self._on_stop: Callable[[], object] = lambda: None

    @property
    def interval(self) -> float:
        """:attr:`frequency` in seconds."""
        frequency = self.frequency
        if isinstance(frequency, timedelta):
            return frequency.total_seconds()
        return float(frequency or 0)

    def poll(self) -> Any:
        """Do one round of work.  Override this (a plain method or ``async def``).

        Raises:
            NotImplementedError: the subclass did not override it.
        """
        raise NotImplementedError(f"{type(self).__name__} must define poll(self)")

    def stop(self) -> None:
        """Stop polling promptly (a poll already running is let finish)."""
        self.die = True
        self._on_stop()

    def __json__(self) -> dict[str, Any]:
        data = super().__json__()
        data.update({"frequency": self.frequency, "now": self.now, "last_ran": self._last_ran})
        if self._leader is not None:
            data["leader"] = self._leader
        return data
