"""What ``moksha monitor`` shows: a snapshot of a hub, its rates, and its rendering with rich.

A :class:`Snapshot` comes from either source the command reads:

* a hub's status JSON (``/_moksha/hub/status``, :func:`from_status`): counters
  are totals since the hub started, so rates are differences between two
  snapshots;
* the monitoring socket (:func:`from_report`): counters are those of the last
  interval (``__json__`` resets them), so rates are counts over the time
  between two reports.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from moksha.topics import topics_of

__all__ = [
    "ConsumerView",
    "ProducerView",
    "Snapshot",
    "from_report",
    "from_status",
    "render",
    "with_rates",
]


@dataclass(frozen=True)
class ConsumerView:
    """One consumer as the monitor shows it.

    Attributes:
        received, consumed: messages handed to it / taken from its backlog.
        received_rate, consumed_rate: per second, once two snapshots allow it.
        mean_ms: mean processing time, when it processed anything.
    """

    name: str
    module: str
    topics: tuple[str, ...]
    received: int
    consumed: int
    backlog: int | None
    exceptions: int
    mean_ms: float | None
    received_rate: float | None = None
    consumed_rate: float | None = None

    @property
    def key(self) -> tuple[str, str, tuple[str, ...]]:
        """What identifies the consumer from one snapshot to the next."""
        return self.module, self.name, self.topics


@dataclass(frozen=True)
class ProducerView:
    """One producer as the monitor shows it."""

    name: str
    module: str
    frequency: float | None
    last_ran: float | None
    exceptions: int


@dataclass(frozen=True)
class Snapshot:
    """What a hub reported at one moment.

    Attributes:
        source: where it came from (a hub URL or a socket endpoint).
        taken: when, on the ``time.monotonic()`` clock.
        per_interval: the counters are since the previous report, not totals.
        backends: each backend's name and whether it is connected (status only).
        livesocket: the live socket's numbers (status only).
        note: what the monitor has to say about it (e.g. the hub stopped answering).
    """

    source: str
    taken: float
    consumers: tuple[ConsumerView, ...]
    producers: tuple[ProducerView, ...]
    per_interval: bool = False
    hub_id: str | None = None
    state: str | None = None
    backends: tuple[tuple[str, bool], ...] = ()
    livesocket: Mapping[str, Any] | None = None
    note: str | None = None


NONE = "-"
"""Shown where a value is unknown."""


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: Any) -> int:
    number = _number(value)
    return int(number) if number is not None else 0


def _producers(items: Sequence[Any]) -> tuple[ProducerView, ...]:
    return tuple(
        ProducerView(
            str(p.get("name", "?")),
            str(p.get("module", "")),
            _number(p.get("frequency")),
            _number(p.get("last_ran")),
            _count(p.get("exceptions")),
        )
        for p in items
        if isinstance(p, Mapping)
    )


def _items(data: Mapping[str, Any], name: str) -> list[Any]:
    items = data.get(name)
    if not isinstance(items, list):
        raise ValueError(f"no {name!r} list")
    return items


def from_status(data: Any, source: str, taken: float | None = None) -> Snapshot:
    """A snapshot of a hub's status JSON (:func:`moksha.widgets.status.hub_status`).

    Raises:
        ValueError: ``data`` is not a hub status.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("hub"), Mapping):
        raise ValueError("not a Moksha hub status")
    consumers = tuple(
        ConsumerView(
            str(c.get("name", "?")),
            str(c.get("module", "")),
            tuple(topics_of(c.get("topic") or [])),
            _count(c.get("headcount_in")),
            _count(c.get("headcount_out")),
            None if c.get("backlog") is None else _count(c.get("backlog")),
            _count(c.get("exceptions")),
            _number(c.get("mean_time_ms")),
        )
        for c in _items(data, "consumers")
        if isinstance(c, Mapping)
    )
    backends = tuple(
        (str(b.get("name", "?")), bool(b.get("connected")))
        for b in data.get("backends") or ()
        if isinstance(b, Mapping)
    )
    live = data.get("livesocket")
    return Snapshot(
        source,
        time.monotonic() if taken is None else taken,
        consumers,
        _producers(_items(data, "producers")),
        hub_id=str(data["hub"].get("id", "")) or None,
        state=str(data["hub"].get("state", "")) or None,
        backends=backends,
        livesocket=live if isinstance(live, Mapping) else None,
    )


def from_report(data: Any, source: str, taken: float | None = None) -> Snapshot:
    """A snapshot of what the monitoring socket published (see :mod:`moksha.monitoring.socket`).

    Raises:
        ValueError: ``data`` is not a monitoring report.
    """
    if not isinstance(data, Mapping):
        raise ValueError("not a Moksha monitoring report")
    consumers = []
    for c in _items(data, "consumers"):
        if not isinstance(c, Mapping):
            continue
        times = [t for t in c.get("times") or () if _number(t) is not None]
        consumers.append(
            ConsumerView(
                str(c.get("name", "?")),
                str(c.get("module", "")),
                tuple(topics_of(c.get("topic") or [])),
                _count(c.get("headcount_in")),
                _count(c.get("headcount_out")),
                None if c.get("backlog") is None else _count(c.get("backlog")),
                _count(c.get("exceptions")),
                round(1000 * sum(times) / len(times), 3) if times else None,
            )
        )
    return Snapshot(
        source,
        time.monotonic() if taken is None else taken,
        tuple(consumers),
        _producers(_items(data, "producers")),
        per_interval=True,
    )


def with_rates(
    current: Snapshot, previous: Snapshot | None, window: float | None = None
) -> Snapshot:
    """``current`` with messages per second filled in.

    Args:
        current: the newer snapshot.
        previous: the one before (totals are compared with it).
        window: for a first per-interval snapshot, the seconds its counts cover
            (the publisher's ``moksha.monitoring.interval``).

    Returns:
        A copy with rates where they can be known.
    """
    elapsed = current.taken - previous.taken if previous is not None else window
    if elapsed is None or elapsed <= 0:
        return current
    before = {c.key: c for c in previous.consumers} if previous is not None else {}
    consumers = []
    for consumer in current.consumers:
        old = before.get(consumer.key)
        if current.per_interval:
            received, consumed = consumer.received, consumer.consumed
        elif old is None:
            consumers.append(consumer)
            continue
        else:
            # A total that shrank was reset (the monitoring socket resets them): all of it is new.
            received = _grown(consumer.received, old.received)
            consumed = _grown(consumer.consumed, old.consumed)
        consumers.append(
            dataclasses.replace(
                consumer, received_rate=received / elapsed, consumed_rate=consumed / elapsed
            )
        )
    return dataclasses.replace(current, consumers=tuple(consumers))


def _grown(now: int, before: int) -> int:
    return now - before if now >= before else now


def _rate(value: float | None) -> str:
    return NONE if value is None else f"{value:,.1f}"


def _ago(timestamp: float | None, now: float) -> str:
    return "never" if timestamp is None else f"{max(0.0, now - timestamp):,.1f} s ago"


def render(snapshot: Snapshot, *, now: float | None = None) -> RenderableType:
    """The snapshot as rich renderables: a heading, consumers, producers, backends, live socket.

    Args:
        snapshot: what to show.
        now: the current Unix time, for "last ran" (default: now).
    """
    heading = Text("Moksha hub", style="bold")
    if snapshot.hub_id:
        heading.append(f" {snapshot.hub_id}")
    if snapshot.state:
        running = snapshot.state == "running"
        heading.append(f" · {snapshot.state}", style="green" if running else "red")
    heading.append(f" · {snapshot.source} · {time.strftime('%H:%M:%S')}", style="dim")
    parts: list[RenderableType] = [heading]
    if snapshot.note:
        parts.append(Text(snapshot.note, style="yellow"))
    parts.append(_consumers(snapshot))
    parts.append(_producers_table(snapshot, time.time() if now is None else now))
    if snapshot.backends:
        line = Text("Backends: ")
        for index, (name, connected) in enumerate(snapshot.backends):
            line.append(", " if index else "")
            line.append(f"{name} ", style="bold")
            state = ("connected", "green") if connected else ("DISCONNECTED", "bold red")
            line.append(*state)
        parts.append(line)
    if snapshot.livesocket is not None:
        live = snapshot.livesocket
        parts.append(
            Text(
                f"Live socket: {_count(live.get('clients'))} clients "
                f"({_count(live.get('websocket'))} WebSocket, {_count(live.get('sse'))} SSE), "
                f"{_count(live.get('subscriptions'))} subscriptions, "
                f"{_count(live.get('conflated'))} conflated, "
                f"{_count(live.get('slow_disconnects'))} slow clients dropped"
            )
        )
    return Group(*parts)


def _consumers(snapshot: Snapshot) -> RenderableType:
    if not snapshot.consumers:
        return Text("No consumers.", style="dim")
    counted = "in the last interval" if snapshot.per_interval else "since the hub started"
    table = Table(title=f"Consumers (counts {counted})", title_justify="left")
    for column in ("consumer", "topics"):
        table.add_column(column)
    for column in ("received", "consumed", "in/s", "out/s", "backlog", "errors", "mean ms"):
        table.add_column(column, justify="right")
    for c in snapshot.consumers:
        backlog = NONE if c.backlog is None else f"{c.backlog:,}"
        table.add_row(
            # Names and topics are the hub's text: Text, so "[...]" is not read as markup.
            Text(c.name),
            Text(", ".join(c.topics) or "(none)"),
            f"{c.received:,}",
            f"{c.consumed:,}",
            _rate(c.received_rate),
            _rate(c.consumed_rate),
            Text(backlog, style="yellow" if c.backlog else ""),
            Text(f"{c.exceptions:,}", style="bold red" if c.exceptions else ""),
            NONE if c.mean_ms is None else f"{c.mean_ms:,.3f}",
        )
    return table


def _producers_table(snapshot: Snapshot, now: float) -> RenderableType:
    if not snapshot.producers:
        return Text("No producers.", style="dim")
    table = Table(title="Producers", title_justify="left")
    table.add_column("producer")
    for column in ("every", "last ran", "failing"):
        table.add_column(column, justify="right")
    for p in snapshot.producers:
        table.add_row(
            Text(p.name),
            NONE if p.frequency is None else f"{p.frequency:g} s",
            _ago(p.last_ran, now),
            Text(f"{p.exceptions:,}", style="bold red" if p.exceptions else ""),
        )
    return table
