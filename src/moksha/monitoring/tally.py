"""Totals since the hub started, from statistics that plugins reset.

A consumer counts what it received, consumed and failed on, and keeps its
latest processing times (:meth:`~moksha.hub.api.Consumer.stats`);
:meth:`~moksha.hub.api.Consumer.__json__` reports them and sets them back to
zero, as the original Moksha did (the monitoring socket relies on that).
Prometheus wants counters that only grow and a histogram of every processing
time.  :class:`HubTally` makes the second from the first without touching the
hot path: each :meth:`~HubTally.sample` adds what changed since the previous
one.

Three details keep the totals exact:

* the monitoring socket resets the counters through :meth:`HubTally.report`,
  which adds the values it resets to the totals first;
* a counter found smaller than at the previous read was reset by someone else
  (a plugin calling ``__json__``): its new value is all new;
* new processing times are told from old ones by identity, not value: each time
  is a fresh ``float`` object, and the tally keeps the previous read's objects
  alive, so no new one can share their ids.  When more arrived between two
  reads than a consumer keeps (:data:`~moksha.hub.api.consumer.TIMES_KEPT`),
  the kept ones stand for the missing ones, so the histogram's count still
  matches the messages consumed.

A plugin whose statistics cannot be read (a consumer that keeps its own
``self.stats = {}``, a ``__json__`` that raises) is left out of the totals,
logged once, and listed in :meth:`HubTally.unreadable` with the error, so
``/metrics``, ``/ready`` and the monitoring socket still report every other
plugin and ``/ready`` names the broken one.

Backends and producers are sampled too: a backend whose ``connected`` goes
from false back to true counts as a reconnection, and a producer whose
consecutive-failure count grows adds to its failures.  Both are seen only at
reads: an outage or a failure shorter than the time between two reads
(:class:`~moksha.monitoring.Monitor` reads every second) goes unseen.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moksha.hub.api.consumer import TIMES_KEPT, Consumer
from moksha.topics import topics_of

if TYPE_CHECKING:
    from moksha.hub.api import Producer
    from moksha.hub.backends import Backend
    from moksha.hub.hub import MokshaHub

log = logging.getLogger("moksha.monitoring")

__all__ = [
    "BUCKETS",
    "BackendTally",
    "ConsumerTally",
    "Histogram",
    "HubTally",
    "ProducerTally",
]

BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf,
)  # fmt: skip
"""Upper bounds (seconds) of the processing-time histogram; consumers often take well under 1 ms."""


@dataclass
class Histogram:
    """Observations counted per bucket of :data:`BUCKETS`, and their sum."""

    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: float = 0.0

    def observe(self, seconds: float, weight: int = 1) -> None:
        """Count ``seconds`` ``weight`` times."""
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += weight
        self.total += seconds * weight

    @property
    def count(self) -> int:
        """How many observations."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations at most that)`` per bucket, as Prometheus wants them."""
        running = 0
        result = []
        for bound, count in zip(BUCKETS, self.counts, strict=True):
            running += count
            result.append((bound, running))
        return result


def _grown(now: int, before: int) -> int:
    """How much a counter grew; one found smaller was reset, so all of it is new."""
    return now - before if now >= before else now


@dataclass(eq=False)
class ConsumerTally:
    """One consumer's totals since the hub started.

    Attributes:
        name, module: the consumer's class.
        topics: its patterns.
        received: messages handed to it (``headcount_in``).
        consumed: messages it took from its backlog (``headcount_out``; retries count again).
        exceptions: exceptions its ``consume`` raised.
        backlog: messages waiting, at the last read.
        queue_depth: messages waiting for it in the broker, at the last read (None: unknown).
        processing: its processing times.
    """

    name: str
    module: str
    topics: tuple[str, ...]
    received: int = 0
    consumed: int = 0
    exceptions: int = 0
    backlog: int = 0
    queue_depth: int | None = None
    processing: Histogram = field(default_factory=Histogram)
    _counters: tuple[int, int, int] = (0, 0, 0)
    _times: list[float] = field(default_factory=list)

    def add(self, stats: Mapping[str, Any], *, reset: bool) -> None:
        """Add what changed since the previous read.

        Args:
            stats: the consumer's ``stats()`` (or ``__json__()``) now.
            reset: the consumer's counters were set to zero right after ``stats``.
        """
        counters = (
            int(stats.get("headcount_in") or 0),
            int(stats.get("headcount_out") or 0),
            int(stats.get("exceptions") or 0),
        )
        received, consumed, exceptions = map(_grown, counters, self._counters)
        self.received += received
        self.consumed += consumed
        self.exceptions += exceptions
        self.backlog = int(stats.get("backlog") or 0)
        times: list[float] = list(stats.get("times") or ())
        seen = {id(seconds) for seconds in self._times}
        new = [seconds for seconds in times if id(seconds) not in seen]
        weights = _spread(consumed, len(new)) if len(new) >= TIMES_KEPT else None
        for index, seconds in enumerate(new):
            self.processing.observe(seconds, weights[index] if weights else 1)
        self._counters = (0, 0, 0) if reset else counters
        self._times = [] if reset else times


def _spread(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` whole weights of at least 1 (the newest take the remainder)."""
    if total <= parts:
        return [1] * parts
    base, extra = divmod(total, parts)
    return [base] * (parts - extra) + [base + 1] * extra


@dataclass(eq=False)
class ProducerTally:
    """One producer's failures since the hub started (as far as reads saw them).

    Attributes:
        name, module: the producer's class.
        failures: polls that raised.
        consecutive: failures in a row at the last read (0 after a good poll).
        last_ran: when it last polled (Unix time), if it is a polling producer that ran.
    """

    name: str
    module: str
    failures: int = 0
    consecutive: int = 0
    last_ran: float | None = None

    def add(self, report: Mapping[str, Any]) -> None:
        """Add what changed since the previous read of the producer's ``__json__()``."""
        consecutive = int(report.get("exceptions") or 0)
        self.failures += _grown(consecutive, self.consecutive)
        self.consecutive = consecutive
        last_ran = report.get("last_ran")
        self.last_ran = float(last_ran) if isinstance(last_ran, int | float) else None


@dataclass(eq=False)
class BackendTally:
    """One backend's connection, and the reconnections reads saw.

    Attributes:
        name: the backend's name.
        connected: whether it was connected at the last read.
        reconnects: times it was found connected again after being found disconnected.
    """

    name: str
    connected: bool = True
    reconnects: int = 0

    def add(self, connected: bool) -> None:
        """Record the connection state now."""
        if connected and not self.connected:
            self.reconnects += 1
        self.connected = connected


class HubTally:
    """The totals of one hub's consumers, producers and backends.

    Safe to use from several threads: reads are serialised.

    Args:
        hub: the hub; a :class:`~moksha.hub.CentralMokshaHub` has consumers and producers.
    """

    def __init__(self, hub: MokshaHub) -> None:
        self.hub = hub
        self._lock = threading.Lock()
        # Keyed by id(); the plugin objects are held with their tallies, so ids stay theirs.
        self._consumers: dict[int, tuple[Consumer, ConsumerTally]] = {}
        self._producers: dict[int, tuple[Producer, ProducerTally]] = {}
        self._backends: dict[int, tuple[Backend, BackendTally]] = {}
        # Plugins whose statistics could not be read at the last try: (plugin, error).
        self._unreadable: dict[int, tuple[Consumer | Producer, str]] = {}

    def sample(self) -> None:
        """Read every consumer, producer and backend, and add what changed.

        A plugin whose statistics cannot be read is skipped (see :meth:`unreadable`).
        """
        with self._lock:
            for consumer in self._hub_consumers():
                if (stats := self._read(consumer, consumer.stats)) is not None:
                    tally = self._consumer_tally(consumer)
                    tally.add(stats, reset=False)
                    tally.queue_depth = consumer.queue_depth  # not in stats(): the original's shape
            for producer in self._hub_producers():
                if (report := self._read(producer, producer.__json__)) is not None:
                    self._producer_tally(producer).add(report)
            for backend in self.hub.backends:
                entry = self._backends.get(id(backend))
                connected = backend.connected
                if entry is None:
                    self._backends[id(backend)] = (backend, BackendTally(backend.name, connected))
                else:
                    entry[1].add(connected)

    def report(self, consumer: Consumer) -> dict[str, Any] | None:
        """``consumer.__json__()`` (which resets its counters), the values added to the totals.

        Returns:
            What ``__json__`` returned, or None when it could not be read
            (see :meth:`unreadable`).
        """
        with self._lock:
            data = self._read(consumer, consumer.__json__)
            if data is not None:
                self._consumer_tally(consumer).add(data, reset=True)
        return None if data is None else dict(data)

    def producer_report(self, producer: Producer) -> dict[str, Any] | None:
        """``producer.__json__()``, or None when it could not be read (see :meth:`unreadable`)."""
        with self._lock:
            data = self._read(producer, producer.__json__)
        return None if data is None else dict(data)

    def unreadable(self) -> dict[str, str]:
        """The plugins whose statistics could not be read at the last try, with the error.

        Returns:
            ``{"consumer <module>.<Class>": "<error>; <fix>"}`` (``producer ...`` likewise).
        """
        with self._lock:
            return {_label(plugin): error for plugin, error in self._unreadable.values()}

    def _read(self, plugin: Consumer | Producer, read: Any) -> Mapping[str, Any] | None:
        """``read()`` (a plugin's ``stats`` or ``__json__``), or None when it fails.

        The first failure of a plugin is logged, and so is its recovery.
        """
        try:
            data = read()
            if not isinstance(data, Mapping):
                raise TypeError(f"it returned a {type(data).__name__}, not a dict")
        except Exception as exc:
            if id(plugin) not in self._unreadable:
                error = (
                    f"{type(exc).__name__}: {exc}; its statistics cannot be read, so "
                    "monitoring leaves it out (does it assign self.stats, or override "
                    "stats or __json__?)"
                )
                self._unreadable[id(plugin)] = (plugin, error)
                log.error("monitoring: %s: %s", _label(plugin), error)
            return None
        if self._unreadable.pop(id(plugin), None) is not None:
            log.info("monitoring: %s reports its statistics again", _label(plugin))
        return data

    def consumers(self) -> list[ConsumerTally]:
        """The consumers' totals, as of the last read."""
        return [tally for _, tally in self._consumers.values()]

    def producers(self) -> list[ProducerTally]:
        """The producers' totals, as of the last read."""
        return [tally for _, tally in self._producers.values()]

    def backends(self) -> list[BackendTally]:
        """The backends' states, as of the last read."""
        return [tally for _, tally in self._backends.values()]

    def _hub_consumers(self) -> Sequence[Consumer]:
        consumers: Sequence[Consumer] = getattr(self.hub, "consumers", ())
        return consumers

    def _hub_producers(self) -> Iterable[Producer]:
        producers: Sequence[Producer] = getattr(self.hub, "producers", ())
        return producers

    def _consumer_tally(self, consumer: Consumer) -> ConsumerTally:
        # Called only after the consumer's statistics were read.
        entry = self._consumers.get(id(consumer))
        if entry is None:
            cls = type(consumer)
            tally = ConsumerTally(cls.__name__, cls.__module__, tuple(topics_of(consumer.topic)))
            entry = self._consumers[id(consumer)] = (consumer, tally)
        return entry[1]

    def _producer_tally(self, producer: Producer) -> ProducerTally:
        entry = self._producers.get(id(producer))
        if entry is None:
            cls = type(producer)
            tally = ProducerTally(cls.__name__, cls.__module__)
            entry = self._producers[id(producer)] = (producer, tally)
        return entry[1]


def _label(plugin: Consumer | Producer) -> str:
    """``consumer pkg.mod.Class`` or ``producer ...``, without asking the plugin anything."""
    kind = "consumer" if isinstance(plugin, Consumer) else "producer"
    cls = type(plugin)
    return f"{kind} {cls.__module__}.{cls.__qualname__}"
