"""Topic names and patterns, with the AMQP rules on every backend.

A topic is a dotted name (``org.example.app.event``); a *pattern* may use two
wildcard words: ``*`` matches exactly one word, ``#`` matches zero or more
words.  A word that merely contains ``*`` or ``#`` (``a*``) is literal, as on
RabbitMQ.  ``moksha.*.event`` matches ``moksha.app.event``;
``moksha.#`` matches ``moksha``, ``moksha.a`` and ``moksha.a.b``.

This module is the only place topics are matched: the memory backend, the
ZeroMQ filter, the live socket and the tests all use it.

:class:`TopicRouter` finds every value registered under a pattern that matches
a topic by walking a trie of pattern words, so the cost of a lookup grows with
the topic's length, not with the number of patterns; results are cached per
topic until the routes change.

>>> router = TopicRouter()
>>> router.add("org.*.event", "a")
>>> router.add("org.#", "b")
>>> router.match("org.app.event")
('a', 'b')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["TopicRouter", "literal_prefix", "matches", "split", "topics_of"]

T = TypeVar("T")

ONE_WORD = "*"
ANY_WORDS = "#"

# How many distinct topics' results the router remembers between route changes.
_CACHE_SIZE = 8192


def split(topic: str) -> list[str]:
    """Split a topic or pattern into words; the empty topic has none."""
    return topic.split(".") if topic else []


def topics_of(topic: str | Iterable[str] | None) -> list[str]:
    """Normalise a consumer's ``topic`` attribute (a str or a list of them) to a list."""
    if topic is None or topic == "":
        return []
    if isinstance(topic, str):
        return [topic]
    return [t for t in topic if t]


def matches(pattern: str, topic: str) -> bool:
    """Whether ``topic`` matches ``pattern`` under the AMQP rules."""
    words = split(topic)
    # The positions in the topic that the pattern words read so far can reach.
    reachable = {0}
    for word in split(pattern):
        if word == ANY_WORDS:
            reachable = set(range(min(reachable), len(words) + 1))
        elif word == ONE_WORD:
            reachable = {t + 1 for t in reachable if t < len(words)}
        else:
            reachable = {t + 1 for t in reachable if t < len(words) and words[t] == word}
        if not reachable:
            return False
    return len(words) in reachable


def literal_prefix(pattern: str) -> str:
    """The longest prefix of ``pattern`` before its first wildcard word.

    Backends that filter by prefix (ZeroMQ) subscribe to this and let
    :func:`matches` decide the rest: ``a.b.*`` → ``a.b.``, ``a.b.#`` → ``a.b``
    (``#`` may match no word), ``#`` → ``""``, a pattern without wildcards → itself.
    """
    words = split(pattern)
    for i, word in enumerate(words):
        if word in (ONE_WORD, ANY_WORDS):
            literal = ".".join(words[:i])
            if not literal or all(rest == ANY_WORDS for rest in words[i:]):
                return literal  # '#' may match no word: the topic can end right here
            return literal + "."
    return pattern


@dataclass(eq=False)
class _Node(Generic[T]):
    children: dict[str, _Node[T]] = field(default_factory=dict)
    routes: list[_Route[T]] = field(default_factory=list)


@dataclass(eq=False)
class _Route(Generic[T]):
    order: int
    pattern: str
    value: T


class TopicRouter(Generic[T]):
    """Map topic patterns to values; find the values whose pattern matches a topic.

    A value may be registered under several patterns; :meth:`match` returns it
    once (compared by identity) however many of them match, in the order of its
    first matching registration: a subscriber to ``a.*`` and ``a.#`` gets one
    delivery of ``a.b``, as from a broker queue bound with both patterns.
    """

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self._order = 0
        self._cache: dict[str, tuple[T, ...]] = {}
        self._count = 0

    def __len__(self) -> int:
        """The number of registrations."""
        return self._count

    def add(self, pattern: str, value: T) -> None:
        """Register ``value`` under ``pattern``."""
        node = self._root
        for word in split(pattern):
            node = node.children.setdefault(word, _Node())
        self._order += 1
        node.routes.append(_Route(self._order, pattern, value))
        self._count += 1
        self._cache.clear()

    def remove(self, pattern: str, value: T) -> bool:
        """Unregister ``value`` from ``pattern``; return whether it was registered."""
        path = [self._root]
        for word in split(pattern):
            child = path[-1].children.get(word)
            if child is None:
                return False
            path.append(child)
        routes = path[-1].routes
        for i, route in enumerate(routes):
            if route.value == value:
                del routes[i]
                break
        else:
            return False
        self._count -= 1
        self._cache.clear()
        # Prune nodes that lead nowhere any more, so the trie does not grow forever.
        words = split(pattern)
        for depth in range(len(words), 0, -1):
            node = path[depth]
            if node.routes or node.children:
                break
            del path[depth - 1].children[words[depth - 1]]
        return True

    def patterns(self) -> list[str]:
        """Every registered pattern, once each, in registration order."""
        found: dict[int, _Route[T]] = {}
        stack = [self._root]
        while stack:
            node = stack.pop()
            for route in node.routes:
                found[route.order] = route
            stack.extend(node.children.values())
        return list(dict.fromkeys(found[k].pattern for k in sorted(found)))

    def match(self, topic: str) -> tuple[T, ...]:
        """The values registered under a pattern matching ``topic``, each once."""
        try:
            return self._cache[topic]
        except KeyError:
            pass
        found = self._collect(split(topic))
        # By identity: values need not be hashable, and equal ones may be distinct subscribers.
        unique: dict[int, T] = {}
        for k in sorted(found):
            unique.setdefault(id(found[k].value), found[k].value)
        result = tuple(unique.values())
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[topic] = result
        return result

    def _collect(self, words: list[str]) -> dict[int, _Route[T]]:
        """The routes whose pattern matches ``words``, by registration order.

        A walk over (trie node, topic position) states, each visited once, so
        patterns with several ``#`` cost polynomial, not exponential, time.
        """
        found: dict[int, _Route[T]] = {}
        seen: set[tuple[int, int]] = set()
        stack = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            if (id(node), i) in seen:
                continue
            seen.add((id(node), i))
            children = node.children
            hash_node = children.get(ANY_WORDS)
            if hash_node is not None:  # '#' swallows zero or more of the remaining words
                stack.extend((hash_node, j) for j in range(i, len(words) + 1))
            if i == len(words):
                for route in node.routes:
                    found[route.order] = route
                continue
            literal = children.get(words[i])
            if literal is not None:
                stack.append((literal, i + 1))
            star = children.get(ONE_WORD)
            if star is not None:
                stack.append((star, i + 1))
        return found
