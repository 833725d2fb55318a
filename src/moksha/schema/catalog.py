"""The topic catalog: every topic a hub saw, with its schema, an example and who declares it.

What it costs per message is kept near nothing: the hub already counts what
it publishes per topic (:class:`~moksha.hub.published.PublishedCounts`); the
catalog counts what consumers receive from a wire the same way, and keeps the
first body seen on each topic as its example.  Rates and "last seen" are
worked out when the catalog is read, from how the counts moved since the
previous read (so "last seen" is as precise as the reads are frequent).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from moksha.hub.published import TOPICS_KEPT, PublishedCounts
from moksha.message import Message
from moksha.schema.registry import SchemaRegistry
from moksha.topics import matches, topics_of

__all__ = ["TopicCatalog"]


@dataclass
class _Seen:
    count: int = 0
    at: float = 0.0  # when the count last moved (seen by a read)
    rate: float = 0.0


@dataclass
class TopicCatalog:
    """Topics seen by one hub.

    Args:
        schemas: the hub's schemas.
        published: the hub's publish counts.
    """

    schemas: SchemaRegistry
    published: PublishedCounts
    received: PublishedCounts = field(default_factory=PublishedCounts)
    examples: dict[str, tuple[Any, float]] = field(default_factory=dict)
    consumers: list[type[Any]] = field(default_factory=list)
    producers: list[type[Any]] = field(default_factory=list)
    _seen: dict[str, _Seen] = field(default_factory=dict)
    _read_at: float = 0.0

    def example(self, message: Message) -> None:
        """Keep ``message``'s body as its topic's example, if the topic has none yet."""
        if message.topic not in self.examples and len(self.examples) < TOPICS_KEPT:
            self.examples[message.topic] = (message.body, message.timestamp_s)

    def receive(self, message: Message) -> None:
        """Count a message a consumer received from a wire."""
        if self.received.count(message.topic):
            self.example(message)

    def declare(self, consumers: Sequence[type[Any]], producers: Sequence[type[Any]]) -> None:
        """The plugin classes running, for "who declares this topic"."""
        self.consumers = list(consumers)
        self.producers = list(producers)

    def entries(self) -> list[dict[str, Any]]:
        """One dict per topic seen or declared, busiest first (JSON-ready)."""
        now = time.time()
        counts = self._counts()
        elapsed = now - self._read_at if self._read_at else 0.0
        for topic, count in counts.items():
            seen = self._seen.setdefault(topic, _Seen())
            if count != seen.count:
                first = seen.count == 0
                seen.rate = (count - seen.count) / elapsed if elapsed > 0 and not first else 0.0
                seen.count, seen.at = count, now
            else:
                seen.rate = 0.0
        self._read_at = now
        topics = set(counts) | self._declared_topics()
        rows = [self._entry(topic, counts.get(topic, 0)) for topic in topics]
        rows.sort(key=lambda row: (-row["count"], row["topic"]))
        return rows

    def _counts(self) -> dict[str, int]:
        counts = dict(self.published._counts)
        for topic, count in dict(self.received._counts).items():
            counts[topic] = counts.get(topic, 0) + count
        return counts

    def _declared_topics(self) -> set[str]:
        topics = {schema.topic for schema in self.schemas if schema.topic}
        for cls in (*self.consumers, *self.producers):
            topic = getattr(cls, "topic", None)
            if isinstance(topic, str | list | tuple):
                topics.update(topics_of(topic))
        return topics

    def _entry(self, topic: str, count: int) -> dict[str, Any]:
        schema = self.schemas.for_topic(topic)
        seen = self._seen.get(topic)
        example = self.examples.get(topic)
        summary = None
        if schema is not None and example is not None:
            try:
                summary = str(schema.view(Message(topic, example[0])).summary)
            except Exception:  # a schema class that cannot read the example
                summary = None
        return {
            "topic": topic,
            "count": count,
            "rate": round(seen.rate, 2) if seen else 0.0,
            "last_seen": seen.at if seen and seen.count else None,
            "schema": schema.name if schema is not None else None,
            "schema_package": schema.package if schema is not None else None,
            "example": example[0] if example is not None else None,
            "summary": summary,
            "consumers": self._declaring(self.consumers, topic),
            "producers": self._declaring(self.producers, topic),
        }

    def _declaring(self, classes: Sequence[type[Any]], topic: str) -> list[str]:
        names = []
        for cls in classes:
            topic_attr = getattr(cls, "topic", None)
            patterns = topics_of(topic_attr) if isinstance(topic_attr, str | list | tuple) else []
            declared = [
                m for m in getattr(cls, "messages", None) or () if getattr(m, "topic", None)
            ]
            if any(matches(p, topic) or p == topic for p in patterns) or any(
                matches(m.topic, topic) or m.topic == topic for m in declared
            ):
                names.append(f"{cls.__module__}.{cls.__qualname__}")
        return names
