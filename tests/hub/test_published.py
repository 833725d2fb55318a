"""The hub's per-topic publish counts stay bounded and add up."""

from __future__ import annotations

from moksha.hub import MokshaHub
from moksha.hub.published import OTHER, PublishedCounts


def test_counts_past_the_topics_kept_go_to_other_and_still_add_up() -> None:
    counts = PublishedCounts(topics_kept=3)
    for n in range(10):
        counts.count(f"org.example.{n}")
    counts.count("org.example.0")

    assert counts.total == 11
    assert counts.top(2) == [("org.example.0", 2), ("org.example.1", 1), (OTHER, 8)]
    assert counts.top(10) == [
        ("org.example.0", 2),
        ("org.example.1", 1),
        ("org.example.2", 1),
        (OTHER, 7),
    ]
    assert len(counts.top(100)) == 3 + 1  # only three topics are held, however many came


def test_no_other_when_every_topic_is_named() -> None:
    counts = PublishedCounts()
    counts.count("a")
    assert counts.top(5) == [("a", 1)]
    assert PublishedCounts().top(5) == []


async def test_a_hub_counts_what_it_publishes_per_topic() -> None:
    async with MokshaHub({}) as hub:
        await hub.publish("org.example.a", 1)
        await hub.publish("org.example.a", 2)
        await hub.publish("org.example.b", 3)
    assert hub.published.top(5) == [("org.example.a", 2), ("org.example.b", 1)]
