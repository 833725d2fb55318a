"""What a running hub is doing, as JSON: the data of ``/_moksha/hub/status``.

::

    {
      "hub": {"id": "laptop:4242:...", "state": "running", "time": 1700000000.0},
      "consumers": [{"name": "Thermometer", "module": "sensors", "topic": ["sensors.#"],
                     "headcount_in": 120, "headcount_out": 118, "backlog": 2,
                     "queue_depth": 40, "exceptions": 0, "mean_time_ms": 0.8, "initialized": true}],
      "producers": [{"name": "SystemStats", "module": "moksha.widgets.demo",
                     "frequency": 1.0, "last_ran": 1699999999.5, "exceptions": 0, ...}],
      "backends": [{"name": "memory", "connected": true, "cross_process": false, ...}],
      "livesocket": {"clients": 1, "websocket": 1, "sse": 0, "subscriptions": 3, ...},
      "cluster": null   (in a cluster: {"node", "store_reachable", "nodes", "leaders"})
    }

Headcounts are totals since the hub started: reading the status never resets
them (unlike ``Consumer.__json__``, which reports and resets, as the original
did), so any number of pages and monitors may poll it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from moksha.topics import topics_of

if TYPE_CHECKING:
    from moksha.hub.api import Consumer, Producer
    from moksha.hub.hub import MokshaHub
    from moksha.livesocket import LiveSocket

__all__ = ["consumer_stats", "hub_status", "producer_stats"]


def consumer_stats(consumer: Consumer) -> dict[str, Any]:
    """A consumer's counters (read without resetting them), with its mean processing time."""
    stats = consumer.stats()
    times = stats.pop("times")
    stats["topic"] = topics_of(stats["topic"])
    stats["mean_time_ms"] = round(1000 * sum(times) / len(times), 3) if times else None
    stats["queue_depth"] = consumer.queue_depth  # in the broker, as the hub last read it
    return stats


def producer_stats(producer: Producer) -> dict[str, Any]:
    """A producer's report (its ``__json__``, which resets nothing)."""
    report = dict(producer.__json__())
    return {key: value if _plain(value) else str(value) for key, value in report.items()}


def _readable(
    read: Callable[[Any], dict[str, Any]], plugins: Iterable[Any]
) -> list[dict[str, Any]]:
    """``read(plugin)`` for each plugin whose statistics can be read.

    A plugin that broke its own (``self.stats = {}``) is left out rather than
    break the page for every other one; the monitor logs it and /ready names it.
    """
    found = []
    for plugin in plugins:
        try:
            found.append(read(plugin))
        except Exception:
            continue  # reported by moksha.monitoring (logged once, named by /ready)
    return found


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


def hub_status(hub: MokshaHub, livesocket: LiveSocket | None = None) -> dict[str, Any]:
    """The status of ``hub`` (see the module's docstring for the shape).

    Args:
        hub: the hub; a :class:`~moksha.hub.CentralMokshaHub` also reports its plugins.
        livesocket: the live socket serving the pages; by default the hub's own.

    Returns:
        A dict ready for JSON.
    """
    live = livesocket if livesocket is not None else getattr(hub, "livesocket", None)
    return {
        "hub": {"id": hub.hub_id, "state": hub.state.value, "time": time.time()},
        "consumers": _readable(consumer_stats, getattr(hub, "consumers", ())),
        "producers": _readable(producer_stats, getattr(hub, "producers", ())),
        "backends": [
            {"name": backend.name, "connected": backend.connected}
            | dataclasses.asdict(backend.capabilities)
            for backend in hub.backends
        ],
        "livesocket": live.stats() if live is not None else None,
        "cluster": _cluster(hub),
    }


def _cluster(hub: MokshaHub) -> dict[str, Any] | None:
    """In a cluster: this node, the nodes alive with what they reported, and the leaders."""
    cluster = getattr(hub, "cluster", None)
    if cluster is None:
        return None
    return {
        "node": cluster.node_id,
        "store_reachable": cluster.store_reachable,
        "nodes": cluster.nodes,
        "leaders": cluster.leaders,
    }
