"""Messages a hub published, counted per topic with a bounded number of topics.

A topic name may carry an id (``org.example.build.1234``), so the topics a hub
sees can grow without end.  :class:`PublishedCounts` counts the first
:data:`TOPICS_KEPT` distinct topics exactly and every later new topic under
:data:`OTHER`: memory stays bounded whatever publishers do, and the totals still
add up to every message published.

>>> counts = PublishedCounts(topics_kept=2)
>>> for topic in ("a", "b", "a", "c", "d"):
...     _ = counts.count(topic)
>>> counts.top(1)
[('a', 2), ('(other)', 3)]
>>> counts.total
5
"""

from __future__ import annotations

import heapq

__all__ = ["OTHER", "TOPICS_KEPT", "PublishedCounts"]

TOPICS_KEPT = 1000
"""Distinct topics counted one by one; later new topics count under :data:`OTHER`."""

OTHER = "(other)"
"""The name reported for every topic not among the top ones (not a valid topic)."""


class PublishedCounts:
    """Per-topic publish counts, at most ``topics_kept`` topics held.

    Counting is a dict increment, called on every publish from the hub's event
    loop; no lock: a scrape on another thread copies the dict with ``dict()``,
    which CPython does in one step.

    Args:
        topics_kept: distinct topics counted one by one (>= 0).
    """

    def __init__(self, topics_kept: int = TOPICS_KEPT) -> None:
        self.topics_kept = topics_kept
        self._counts: dict[str, int] = {}
        self._overflow = 0

    def count(self, topic: str) -> bool:
        """Count one message published on ``topic``; True when the topic is new (kept)."""
        counts = self._counts
        if topic in counts:
            counts[topic] += 1
            return False
        if len(counts) < self.topics_kept:
            counts[topic] = 1
            return True
        self._overflow += 1
        return False

    @property
    def total(self) -> int:
        """Every message counted."""
        return sum(dict(self._counts).values(), self._overflow)

    def top(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` busiest topics, then :data:`OTHER` with the sum of all the rest.

        Args:
            n: how many topics to name (>= 0).

        Returns:
            ``(topic, count)`` pairs, busiest first (ties by name), and one
            ``(OTHER, count)`` pair last when any message is not on a named topic.
        """
        counts, overflow = dict(self._counts), self._overflow
        busiest = heapq.nsmallest(n, counts.items(), key=lambda item: (-item[1], item[0]))
        rest = sum(counts.values(), overflow) - sum(count for _, count in busiest)
        return [*busiest, (OTHER, rest)] if rest else busiest
