"""Topic patterns follow the AMQP (RabbitMQ topic exchange) rules.

The rules, as RabbitMQ applies them to a binding key and a routing key:

* both are split on ``.`` into words; the empty string is *zero* words
  (``"a."`` is two words, ``"a"`` and ``""``);
* ``*`` matches exactly one word (which may be the empty word);
* ``#`` matches zero or more words, so ``#`` alone matches every topic,
  the empty topic included, and ``a.#`` matches ``a``;
* any other word, including one that merely contains ``*`` or ``#``, matches
  itself only.

The reference matcher below is written from those rules (a regex over the
topic rendered as ``.w1.w2...``), independently of :mod:`moksha.topics`.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from moksha.topics import TopicRouter, literal_prefix, matches, topics_of

# -- the reference matcher -------------------------------------------------


def _words(name: str) -> list[str]:
    """Words of a topic or pattern as RabbitMQ sees them: ``""`` is no words."""
    return name.split(".") if name else []


def reference_matches(pattern: str, topic: str) -> bool:
    """AMQP topic matching, by translating the pattern to a regex.

    Each topic word is rendered as ``.word`` so that zero words is the empty
    string and no dot needs special-casing: ``*`` is one ``.word``, ``#`` is
    any number of them, a literal word is its own escaped ``.word``.
    """
    parts = []
    for word in _words(pattern):
        if word == "*":
            parts.append(r"\.[^.]*")
        elif word == "#":
            parts.append(r"(?:\.[^.]*)*")
        else:
            parts.append(re.escape("." + word))
    rendered = "".join("." + w for w in _words(topic))
    return re.fullmatch("".join(parts), rendered) is not None


# Small alphabets, so that generated patterns and topics collide often.
TOPIC_WORDS = st.sampled_from(["a", "b", "c", ""])
PATTERN_WORDS = st.sampled_from(["a", "b", "c", "", "*", "#"])
topics = st.lists(TOPIC_WORDS, max_size=5).map(".".join)
patterns = st.lists(PATTERN_WORDS, max_size=5).map(".".join)


def test_reference_matcher_agrees_with_the_rabbitmq_tutorial() -> None:
    # Sanity of the oracle itself, on cases whose answer is not in doubt.
    assert reference_matches("*.orange.*", "quick.orange.rabbit")
    assert not reference_matches("*.orange.*", "quick.orange.male.rabbit")
    assert reference_matches("lazy.#", "lazy")
    assert reference_matches("#", "")
    assert not reference_matches("*", "")
    assert reference_matches("*", ".") is False
    assert reference_matches("*.*", ".")


# -- matches() -------------------------------------------------------------


@settings(max_examples=2000, deadline=None)
@given(pattern=patterns, topic=topics)
@example(pattern="*", topic="")
@example(pattern="a.#", topic="a")
def test_matches_agrees_with_the_reference(pattern: str, topic: str) -> None:
    assert matches(pattern, topic) == reference_matches(pattern, topic)


# The examples of the RabbitMQ "Topics" tutorial (tutorial five).
TUTORIAL = [
    ("quick.orange.rabbit", {"*.orange.*", "*.*.rabbit"}),
    ("lazy.orange.elephant", {"*.orange.*", "lazy.#"}),
    ("quick.orange.fox", {"*.orange.*"}),
    ("lazy.brown.fox", {"lazy.#"}),
    ("lazy.pink.rabbit", {"*.*.rabbit", "lazy.#"}),
    ("quick.brown.fox", set()),
    ("orange", set()),
    ("quick.orange.male.rabbit", set()),
    ("lazy.orange.male.rabbit", {"lazy.#"}),
    ("lazy", {"lazy.#"}),
]


@pytest.mark.parametrize(("topic", "expected"), TUTORIAL)
def test_rabbitmq_tutorial_examples(topic: str, expected: set[str]) -> None:
    bindings = ["*.orange.*", "*.*.rabbit", "lazy.#"]
    assert {p for p in bindings if matches(p, topic)} == expected


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("moksha.*.event", "moksha.app.event", True),
        ("moksha.*.event", "moksha.event", False),
        ("moksha.*.event", "moksha.a.b.event", False),
        ("moksha.#", "moksha", True),
        ("moksha.#", "moksha.a.b", True),
        ("moksha.#", "mokshaa", False),
        ("#.event", "event", True),
        ("#.event", "a.b.event", True),
        ("#.event", "a.b.events", False),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("#.#", "a", True),
        # A word that merely contains a wildcard character is literal.
        ("a*", "ab", False),
        ("a*", "a*", True),
        ("a.b#", "a.b.c", False),
        # Empty words are words.
        ("a.*", "a.", True),
        ("a..b", "a..b", True),
        ("a.*.b", "a..b", True),
        ("a.b", "a.b.", False),
    ],
)
def test_pattern_examples(pattern: str, topic: str, expected: bool) -> None:
    assert matches(pattern, topic) is expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("#", True), ("", True), ("#.#", True), ("*", False), ("*.#", False), ("a.#", False)],
)
def test_the_empty_topic_is_zero_words(pattern: str, expected: bool) -> None:
    # RabbitMQ splits the routing key "" into no words: "#" matches it, "*" does not.
    assert matches(pattern, "") is expected


# -- TopicRouter -----------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(registered=st.lists(patterns, max_size=12), probes=st.lists(topics, max_size=8))
@example(registered=["#", "*", "a.#"], probes=["", "a", "b.a"])
def test_router_agrees_with_the_reference(registered: list[str], probes: list[str]) -> None:
    router: TopicRouter[int] = TopicRouter()
    for value, pattern in enumerate(registered):
        router.add(pattern, value)
    for topic in probes:
        expected = tuple(v for v, p in enumerate(registered) if reference_matches(p, topic))
        assert router.match(topic) == expected
        assert router.match(topic) == expected  # the cached answer too


def test_router_returns_a_value_once_in_the_order_of_its_first_matching_registration() -> None:
    router: TopicRouter[str] = TopicRouter()
    router.add("a.#", "x")
    router.add("a.b", "y")
    router.add("*.b", "x")  # x again, under another pattern: still one delivery
    router.add("a.b", "z")
    router.add("c.d", "w")  # never matches a.b
    assert router.match("a.b") == ("x", "y", "z")
    assert router.match("a.c") == ("x",)
    assert router.match("c.d") == ("w",)
    assert len(router) == 5


def test_router_with_many_patterns() -> None:
    router: TopicRouter[int] = TopicRouter()
    registered = [f"org.app{i}.*" for i in range(300)] + ["org.#", "#", "org.app7.event"]
    for value, pattern in enumerate(registered):
        router.add(pattern, value)
    assert router.match("org.app7.event") == (7, 300, 301, 302)
    assert router.match("org.app299.x") == (299, 300, 301)
    assert router.match("other") == (301,)
    assert len(router) == len(registered)


def test_remove_unregisters_and_prunes() -> None:
    router: TopicRouter[str] = TopicRouter()
    entries = [("a.b.c", "1"), ("a.*.c", "2"), ("a.#", "3"), ("#", "4"), ("a.b.c", "5")]
    for pattern, value in entries:
        router.add(pattern, value)
    assert router.remove("a.b.c", "1") is True
    assert router.match("a.b.c") == ("2", "3", "4", "5")
    for pattern, value in entries[1:]:
        assert router.remove(pattern, value) is True
    assert len(router) == 0
    assert router.patterns() == []
    assert router.match("a.b.c") == ()
    assert router.match("") == ()


def test_remove_one_of_two_equal_registrations_keeps_the_other() -> None:
    router: TopicRouter[str] = TopicRouter()
    router.add("a", "v")
    router.add("a", "v")
    assert router.match("a") == ("v",)  # one delivery, however many registrations
    assert router.remove("a", "v") is True
    assert router.match("a") == ("v",)
    assert len(router) == 1
    assert router.remove("a", "v") is True
    assert router.match("a") == ()


@pytest.mark.parametrize(
    ("pattern", "value"),
    [("x.y", "1"), ("a.b", "2"), ("a", "1"), ("a.b.c.d", "1"), ("#", "1")],
)
def test_removing_what_was_never_added_returns_false(pattern: str, value: str) -> None:
    router: TopicRouter[str] = TopicRouter()
    router.add("a.b", "1")
    assert router.remove(pattern, value) is False
    assert len(router) == 1
    assert router.match("a.b") == ("1",)


def test_add_and_remove_invalidate_cached_answers() -> None:
    router: TopicRouter[str] = TopicRouter()
    router.add("a.*", "first")
    assert router.match("a.b") == ("first",)
    router.add("#", "second")
    assert router.match("a.b") == ("first", "second")
    router.remove("a.*", "first")
    assert router.match("a.b") == ("second",)


def test_router_stays_correct_past_its_cache_size() -> None:
    router: TopicRouter[str] = TopicRouter()
    router.add("t.*", "star")
    router.add("t.5", "five")
    for i in range(20_000):
        expected = ("star", "five") if i == 5 else ("star",)
        assert router.match(f"t.{i}") == expected
    assert router.match("t.5") == ("star", "five")


def test_patterns_lists_each_pattern_once_in_registration_order() -> None:
    router: TopicRouter[str] = TopicRouter()
    for pattern, value in [("b.#", "1"), ("a", "2"), ("b.#", "3"), ("*", "4")]:
        router.add(pattern, value)
    assert router.patterns() == ["b.#", "a", "*"]


# -- literal_prefix, topics_of ---------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("a.b.*", "a.b."),
        # "#" may match zero words: a.b.# matches "a.b" itself, so the prefix has no dot.
        ("a.b.#", "a.b"),
        ("a.*.c", "a."),
        ("*.b", ""),
        ("#", ""),
        ("a.b.c", "a.b.c"),
        ("a*.b", "a*.b"),
        ("", ""),
    ],
)
def test_literal_prefix(pattern: str, prefix: str) -> None:
    assert literal_prefix(pattern) == prefix


@settings(max_examples=1000, deadline=None)
@given(pattern=patterns, topic=topics)
@example(pattern="a.#", topic="a")
@example(pattern="a.b.#.c", topic="a.b.c")
def test_every_matching_topic_starts_with_the_literal_prefix(pattern: str, topic: str) -> None:
    # What a prefix-filtering backend (ZeroMQ) relies on.
    if reference_matches(pattern, topic):
        assert topic.startswith(literal_prefix(pattern))


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("a.b", ["a.b"]),
        (["a.b", "c.#"], ["a.b", "c.#"]),
        (("x",), ["x"]),
        (["a", ""], ["a"]),
        (None, []),
        ("", []),
        ([], []),
    ],
)
def test_topics_of(topic: str | list[str] | tuple[str, ...] | None, expected: list[str]) -> None:
    assert topics_of(topic) == expected
