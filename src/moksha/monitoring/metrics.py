"""Prometheus metrics of a hub, computed when scraped.

:class:`HubCollector` is a prometheus-client custom collector: nothing is
counted on the message path; each scrape reads the hub's totals
(:class:`~moksha.monitoring.tally.HubTally`) and the live socket's numbers.

====================================================  =========  ==========================
metric                                                type       labels
====================================================  =========  ==========================
``moksha_consumer_messages_received_total``           counter    consumer, module, topic
``moksha_consumer_messages_consumed_total``           counter    consumer, module, topic
``moksha_consumer_exceptions_total``                  counter    consumer, module, topic
``moksha_consumer_backlog``                           gauge      consumer, module, topic
``moksha_consumer_queue_depth``                       gauge      consumer, module, topic
``moksha_consumer_processing_seconds``                histogram  consumer, module, topic
``moksha_producer_failures_total``                    counter    producer, module
``moksha_producer_consecutive_failures``              gauge      producer, module
``moksha_producer_last_poll_timestamp_seconds``       gauge      producer, module
``moksha_backend_connected``                          gauge      backend
``moksha_backend_reconnects_total``                   counter    backend
``moksha_livesocket_clients``                         gauge      transport (websocket, sse)
``moksha_livesocket_subscriptions``                   gauge
``moksha_livesocket_conflated_messages``              gauge
``moksha_livesocket_slow_disconnects_total``          counter
``moksha_messages_published_total``                   counter    topic (top 20, ``(other)``)
``moksha_hub_ready``                                  gauge
``moksha_hub_info``                                   gauge      hub, version
====================================================  =========  ==========================

``topic`` is the consumer's patterns joined by commas, so ``sum by (topic)``
gives the messages per topic pattern.  Published messages are labelled with
their topic for the :data:`TOPICS_SHOWN` busiest topics only, and the rest sum
up under ``(other)``: a topic with an id in it cannot flood Prometheus with
series.  A registry from :func:`hub_registry`
also has prometheus-client's process, platform and garbage-collector metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from moksha import __version__
from moksha.monitoring.tally import ConsumerTally, HubTally

if TYPE_CHECKING:
    from moksha.livesocket import LiveSocket

__all__ = ["TOPICS_SHOWN", "HubCollector", "exposition", "hub_registry"]

TOPICS_SHOWN = 20
"""Topics named in ``moksha_messages_published_total``; the others are ``(other)``."""

_CONSUMER_LABELS = ("consumer", "module", "topic")
_PRODUCER_LABELS = ("producer", "module")


class HubCollector(Collector):
    """Collects a hub's metrics at each scrape.

    Args:
        tally: the hub's totals; each scrape reads the hub again first.
        livesocket: returns the live socket to report on, or None.
        ready: returns whether the hub is ready (see :mod:`moksha.monitoring.health`).
    """

    def __init__(
        self,
        tally: HubTally,
        livesocket: Callable[[], LiveSocket | None],
        ready: Callable[[], bool],
    ) -> None:
        self.tally = tally
        self._livesocket = livesocket
        self._ready = ready

    def collect(self) -> Iterator[Metric]:
        """Read the hub and yield its metric families."""
        self.tally.sample()
        yield from self._consumers()
        yield from self._producers()
        yield from self._backends()
        yield from self._livesocket_metrics()
        yield from self._cluster_metrics()
        hub = self.tally.hub
        published = CounterMetricFamily(
            "moksha_messages_published",
            f"Messages this hub published, per topic (the {TOPICS_SHOWN} busiest, then (other)).",
            labels=["topic"],
        )
        for topic, count in hub.published.top(TOPICS_SHOWN):
            published.add_metric([topic], count)
        yield published
        yield GaugeMetricFamily(
            "moksha_hub_ready", "1 when /ready answers 200.", value=int(self._ready())
        )
        info = GaugeMetricFamily(
            "moksha_hub_info", "The hub's id and Moksha's version.", labels=["hub", "version"]
        )
        info.add_metric([hub.hub_id, __version__], 1)
        yield info

    def _consumers(self) -> Iterator[Metric]:
        received = CounterMetricFamily(
            "moksha_consumer_messages_received",
            "Messages handed to the consumer (its headcount_in), since the hub started.",
            labels=_CONSUMER_LABELS,
        )
        consumed = CounterMetricFamily(
            "moksha_consumer_messages_consumed",
            "Messages the consumer took from its backlog (headcount_out; retries count again).",
            labels=_CONSUMER_LABELS,
        )
        exceptions = CounterMetricFamily(
            "moksha_consumer_exceptions",
            "Exceptions the consumer's consume raised.",
            labels=_CONSUMER_LABELS,
        )
        backlog = GaugeMetricFamily(
            "moksha_consumer_backlog",
            "Messages waiting in the consumer's backlog.",
            labels=_CONSUMER_LABELS,
        )
        depth = GaugeMetricFamily(
            "moksha_consumer_queue_depth",
            "Messages waiting for the consumer in the broker (its durable queue), at the last "
            "read; absent where the backend cannot tell.",
            labels=_CONSUMER_LABELS,
        )
        processing = HistogramMetricFamily(
            "moksha_consumer_processing_seconds",
            "Time the consumer's hooks took per message (each attempt).",
            labels=_CONSUMER_LABELS,
        )
        for labels, tally in _labelled(self.tally.consumers()):
            received.add_metric(labels, tally.received)
            consumed.add_metric(labels, tally.consumed)
            exceptions.add_metric(labels, tally.exceptions)
            backlog.add_metric(labels, tally.backlog)
            if tally.queue_depth is not None:
                depth.add_metric(labels, tally.queue_depth)
            buckets = [(_bound(le), count) for le, count in tally.processing.cumulative()]
            processing.add_metric(labels, buckets, tally.processing.total)
        yield from (received, consumed, exceptions, backlog, depth, processing)

    def _producers(self) -> Iterator[Metric]:
        failures = CounterMetricFamily(
            "moksha_producer_failures",
            "Polls that raised, as seen every second (failures in a row count each).",
            labels=_PRODUCER_LABELS,
        )
        consecutive = GaugeMetricFamily(
            "moksha_producer_consecutive_failures",
            "Polls that raised since the last one that did not.",
            labels=_PRODUCER_LABELS,
        )
        last_poll = GaugeMetricFamily(
            "moksha_producer_last_poll_timestamp_seconds",
            "When the polling producer last polled (Unix time).",
            labels=_PRODUCER_LABELS,
        )
        for tally in self.tally.producers():
            labels = [tally.name, tally.module]
            failures.add_metric(labels, tally.failures)
            consecutive.add_metric(labels, tally.consecutive)
            if tally.last_ran is not None:
                last_poll.add_metric(labels, tally.last_ran)
        yield from (failures, consecutive, last_poll)

    def _backends(self) -> Iterator[Metric]:
        connected = GaugeMetricFamily(
            "moksha_backend_connected", "1 while the backend is connected.", labels=["backend"]
        )
        reconnects = CounterMetricFamily(
            "moksha_backend_reconnects",
            "Times the backend was found connected again after a loss (checked every second).",
            labels=["backend"],
        )
        seen: dict[str, int] = {}
        for tally in self.tally.backends():
            name = _numbered(tally.name, tally.name, seen)
            connected.add_metric([name], int(tally.connected))
            reconnects.add_metric([name], tally.reconnects)
        yield from (connected, reconnects)

    def _cluster_metrics(self) -> Iterator[Metric]:
        cluster = getattr(self.tally.hub, "cluster", None)
        if cluster is None:
            return
        nodes = GaugeMetricFamily(
            "moksha_cluster_nodes", "Nodes of the cluster alive (heartbeat not expired)."
        )
        nodes.add_metric([], len(cluster.nodes))
        clients = GaugeMetricFamily(
            "moksha_cluster_node_clients",
            "Live-socket clients per node, as each node last reported.",
            labels=["node"],
        )
        for node, info in sorted(cluster.nodes.items()):
            count = (info.get("livesocket") or {}).get("clients")
            if isinstance(count, int):
                clients.add_metric([node], count)
        leaders = GaugeMetricFamily(
            "moksha_cluster_leader", "1 per lock and the node holding it.", labels=["lock", "node"]
        )
        for lock, node in sorted(cluster.leaders.items()):
            leaders.add_metric([lock, node], 1)
        store = GaugeMetricFamily(
            "moksha_cluster_store_up", "1 when the last heartbeat reached the cluster's store."
        )
        store.add_metric([], int(cluster.store_reachable))
        info = GaugeMetricFamily("moksha_cluster_node_info", "This node's id.", labels=["node"])
        info.add_metric([cluster.node_id], 1)
        yield from (nodes, clients, leaders, store, info)

    def _livesocket_metrics(self) -> Iterator[Metric]:
        live = self._livesocket()
        if live is None:
            return
        stats = live.stats()
        clients = GaugeMetricFamily(
            "moksha_livesocket_clients", "Connected live-socket clients.", labels=["transport"]
        )
        clients.add_metric(["websocket"], stats["websocket"])
        clients.add_metric(["sse"], stats["sse"])
        yield clients
        yield GaugeMetricFamily(
            "moksha_livesocket_subscriptions",
            "Patterns the connected clients subscribe to.",
            value=stats["subscriptions"],
        )
        yield GaugeMetricFamily(
            "moksha_livesocket_conflated_messages",
            "Messages replaced by a newer one on their topic in connected clients' queues.",
            value=stats["conflated"],
        )
        yield CounterMetricFamily(
            "moksha_livesocket_slow_disconnects",
            "Clients disconnected because their queue was full (slow_policy = disconnect).",
            value=stats["slow_disconnects"],
        )


def _bound(upper: float) -> str:
    return "+Inf" if upper == float("inf") else repr(upper)


def _labelled(tallies: list[ConsumerTally]) -> Iterator[tuple[list[str], ConsumerTally]]:
    """Label values per consumer; a second instance of one class gets ``#2`` after its name."""
    seen: dict[tuple[str, str, str], int] = {}
    for tally in tallies:
        consumer, module, topic = tally.name, tally.module, ",".join(tally.topics)
        yield [_numbered(consumer, (consumer, module, topic), seen), module, topic], tally


def _numbered(name: str, key: Hashable, seen: dict[Any, int]) -> str:
    """``name`` for the first item with ``key``, ``name#2`` for the second, and so on.

    Prometheus refuses two series with the same labels.
    """
    seen[key] = seen.get(key, 0) + 1
    return name if seen[key] == 1 else f"{name}#{seen[key]}"


def hub_registry(collector: HubCollector) -> CollectorRegistry:
    """A registry with ``collector`` and the process, platform and GC metrics.

    A registry of its own, not prometheus-client's global one: two hubs in one
    process (tests, embedding applications) each report only themselves.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The registry's metrics in the format the scraper asked for.

    Args:
        registry: what to expose.
        accept: the request's ``Accept`` header (OpenMetrics when asked, else the text format).

    Returns:
        The body and its content type.
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
