"""Bounded per-topic history of live-socket messages, for recovery after a reconnect.

Every message the live socket sees gets an *event id* ``"<epoch>-<seq>"``:
``seq`` grows by one per message over every topic, and ``epoch`` names the
lifetime of the store that issued it (random per :class:`MemoryHistory`; kept
in the database by :class:`~moksha.livesocket.history_sql.SqlHistory`, so ids
survive a hub restart).  A client that reconnects sends the last id it saw and
asks :meth:`History.since` for what it missed on a pattern.

The history is bounded: per topic it keeps the newest ``max_per_topic`` events
no older than ``max_age`` seconds.  Whatever falls out is remembered as a
*marker* (the highest evicted seq of that topic; a store-wide one for topics
dropped altogether), so :meth:`History.since` can say ``complete=False`` when
a matching event the client never saw is gone, and the client reloads instead
of silently missing it.

>>> import asyncio
>>> async def demo():
...     history = MemoryHistory()
...     first = await history.append("org.a", '"one"')
...     await history.append("org.b", '"two"')
...     events, complete = await history.since("org.*", first)
...     return [e.payload for e in events], complete
>>> asyncio.run(demo())
(['"two"'], True)
"""

from __future__ import annotations

import math
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from moksha.config import Config
from moksha.errors import ConfigError
from moksha.topics import literal_prefix, matches

if TYPE_CHECKING:
    from moksha.livesocket.history_sql import SqlHistory

__all__ = [
    "AGE_KEY",
    "SIZE_KEY",
    "URL_KEY",
    "Event",
    "History",
    "MemoryHistory",
    "SqlHistory",
    "history_from_config",
    "is_literal",
    "new_epoch",
    "split_event_id",
]

SIZE_KEY = "moksha.livesocket.history.size"
AGE_KEY = "moksha.livesocket.history.age"
URL_KEY = "moksha.livesocket.history.url"

_ID = re.compile(r"([0-9a-f]+)-(0|[1-9][0-9]{0,18})")


@dataclass(frozen=True, slots=True)
class Event:
    """One stored message: its event id, its topic, its body as JSON text, when it was stored."""

    id: str
    topic: str
    payload: str
    time: float = 0.0  # seconds since the Unix epoch


def new_epoch() -> str:
    """A fresh random epoch: 8 hex digits, never containing the ``-`` of an id."""
    return secrets.token_hex(4)


def split_event_id(event_id: str) -> tuple[str, int] | None:
    """Split ``"<epoch>-<seq>"`` into its parts.

    Args:
        event_id: an id as a client sent it back (any text).

    Returns:
        ``(epoch, seq)``, or None when the text is not an event id.
    """
    found = _ID.fullmatch(event_id) if isinstance(event_id, str) else None
    return (found[1], int(found[2])) if found else None


def is_literal(pattern: str) -> bool:
    """Whether ``pattern`` has no wildcard word, so it names exactly one topic."""
    return literal_prefix(pattern) == pattern


class History(ABC):
    """Where the live socket keeps recent events for clients that reconnect.

    Use it as an async context manager (or call :meth:`aclose`) so a
    persistent store writes everything out before the hub stops.
    """

    @abstractmethod
    async def append(self, topic: str, payload: str, key: str | None = None) -> str:
        """Store a message and give it the next event id.

        Args:
            topic: the message's topic.
            payload: its body as JSON text, stored and replayed as is.
            key: the message's id; a store shared by several nodes stores a
                message once and gives every node the same event id for it.

        Returns:
            The new event id; ids grow over every topic.
        """

    @abstractmethod
    async def since(self, pattern: str, last_id: str) -> tuple[list[Event], bool]:
        """The events a client missed after ``last_id`` on ``pattern``.

        Args:
            pattern: a topic pattern (``*``/``#`` wildcards, as in :mod:`moksha.topics`).
            last_id: the last event id the client saw.

        Returns:
            The stored events after ``last_id`` whose topic matches, in id order,
            and whether that is everything the client missed: False when
            ``last_id`` is unknown (another epoch, not an id) or a matching
            event after it was evicted, so the client must reload.
        """

    async def position(self) -> str | None:
        """The id of the newest event issued so far, or None for a store that keeps none.

        A subscription's starting point: a client that has seen no event yet
        resumes from it (:meth:`since`) after a reconnection.
        """
        return None

    async def recent(self, pattern: str, count: int, max_age: float | None = None) -> list[Event]:
        """The newest events on ``pattern``, for a page that starts with the recent past.

        Args:
            pattern: a topic pattern.
            count: at most this many events (the newest ones).
            max_age: none older than this many seconds (None: what the store keeps).

        Returns:
            The events, oldest first.  The base class keeps none: a store that
            cannot answer gives an empty list, and the page starts empty.
        """
        return []

    def seen(self, event_id: str, topic: str, message_id: str) -> None:  # noqa: B027
        """Told, after :meth:`append`, which message an event is (a no-op here).

        A store that can recover beyond what it keeps (the archive's) remembers it.
        """

    async def aclose(self) -> None:  # noqa: B027 - a no-op is right for stores that hold nothing
        """Release the store; a persistent one writes out what it still holds first."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _Topic:
    """The events kept for one topic, oldest first, and the newest one evicted."""

    __slots__ = ("entries", "evicted")

    def __init__(self, size: int) -> None:
        # (seq, stored at, event id, payload): tuples, as they are the cheapest to build.
        self.entries: deque[tuple[int, float, str, str]] = deque(maxlen=size)
        self.evicted = 0


class MemoryHistory(History):
    """History in process memory: bounded per topic, in age, and in topic count.

    Topics are kept in least-recently-appended order; when there are more than
    ``max_topics``, or the newest event of the oldest topic is older than
    ``max_age``, that topic is dropped whole.  :meth:`append` is O(1).

    Args:
        max_per_topic: events kept per topic.
        max_age: seconds an event is kept.
        max_topics: topics kept.
        clock: returns the time in seconds; tests inject their own.

    Raises:
        ValueError: a bound is not positive.
    """

    def __init__(
        self,
        max_per_topic: int = 100,
        max_age: float = 300.0,
        max_topics: int = 10000,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_per_topic < 1 or max_topics < 1 or not max_age > 0:
            raise ValueError("history bounds must be positive")
        self._max_per_topic = max_per_topic
        self._max_age = max_age
        self._max_topics = max_topics
        self._clock = clock
        self._epoch = new_epoch()
        self._seq = 0
        self._topics: OrderedDict[str, _Topic] = OrderedDict()
        # The newest seq of any topic dropped whole: a client older than that may
        # have missed an event of a topic we no longer know, so it must reload.
        self._dropped = 0

    @property
    def epoch(self) -> str:
        """The epoch part of the ids this store issues."""
        return self._epoch

    async def append(self, topic: str, payload: str, key: str | None = None) -> str:
        """Store a message and give it the next event id (see :meth:`History.append`)."""
        now = self._clock()
        self._seq = seq = self._seq + 1
        event_id = f"{self._epoch}-{seq}"
        topics = self._topics
        kept = topics.get(topic)
        if kept is None:
            kept = topics[topic] = _Topic(self._max_per_topic)
            if len(topics) > self._max_topics:
                self._drop(next(iter(topics)))
        else:
            topics.move_to_end(topic)
            entries = kept.entries
            if len(entries) == self._max_per_topic:
                kept.evicted = entries[0][0]  # the deque is about to push it out
        kept.entries.append((seq, now, event_id, payload))
        # The least recently appended topic is first: drop it once all it holds is too old.
        if next(iter(topics.values())).entries[-1][1] < now - self._max_age:
            self._expire(now - self._max_age)
        return event_id

    async def position(self) -> str:
        """The newest event id issued (see :meth:`History.position`)."""
        return f"{self._epoch}-{self._seq}"

    async def since(self, pattern: str, last_id: str) -> tuple[list[Event], bool]:
        """The events after ``last_id`` on ``pattern`` (see :meth:`History.since`)."""
        parsed = split_event_id(last_id)
        if parsed is None or parsed[0] != self._epoch or parsed[1] > self._seq:
            return [], False
        last = parsed[1]
        cutoff = self._clock() - self._max_age
        self._expire(cutoff)
        complete = self._dropped <= last
        found: list[tuple[int, str, str, str]] = []
        for topic in self._topics_matching(pattern):
            kept = self._topics[topic]
            entries = kept.entries
            while entries and entries[0][1] < cutoff:
                kept.evicted = entries.popleft()[0]
            if kept.evicted > last:
                complete = False
            # Newest first until we reach what the client has seen: usually a few events.
            for seq, _, event_id, payload in reversed(entries):
                if seq <= last:
                    break
                found.append((seq, event_id, topic, payload))
        found.sort(key=itemgetter(0))
        return [Event(event_id, topic, payload) for _, event_id, topic, payload in found], complete

    async def recent(self, pattern: str, count: int, max_age: float | None = None) -> list[Event]:
        """The newest ``count`` events on ``pattern`` (see :meth:`History.recent`)."""
        now = self._clock()
        age = self._max_age if max_age is None else min(max_age, self._max_age)
        cutoff = now - age
        found: list[tuple[int, float, str, str, str]] = []
        for topic in self._topics_matching(pattern):
            for taken, (seq, stored, event_id, payload) in enumerate(
                reversed(self._topics[topic].entries)
            ):
                if stored < cutoff or taken == count:
                    break
                found.append((seq, stored, event_id, topic, payload))
        found.sort(key=itemgetter(0))
        return [Event(e, t, p, stored) for _, stored, e, t, p in found[-count:]] if count else []

    def _topics_matching(self, pattern: str) -> list[str]:
        if is_literal(pattern):
            return [pattern] if pattern in self._topics else []
        prefix = literal_prefix(pattern)
        return [t for t in self._topics if t.startswith(prefix) and matches(pattern, t)]

    def _expire(self, cutoff: float) -> None:
        """Drop the least recently appended topics while their newest event is older than cutoff."""
        topics = self._topics
        while topics:
            oldest = next(iter(topics))
            if topics[oldest].entries[-1][1] >= cutoff:
                return
            self._drop(oldest)

    def _drop(self, topic: str) -> None:
        kept = self._topics.pop(topic)
        self._dropped = max(self._dropped, kept.entries[-1][0])


def _read(config: Mapping[str, Any], key: str, default: Any, parse: Callable[[Any], Any]) -> Any:
    value = config.get(key, default)
    try:
        return parse(value)
    except (TypeError, ValueError) as exc:
        source = _source(config, key)
        raise ConfigError(f"expected {exc}, got {value!r}.", key=key, source=source) from None


def _source(config: Mapping[str, Any], key: str) -> str | None:
    if isinstance(config, Config):
        try:
            return config.source(key)
        except KeyError:
            return None
    return None


def _size(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("a whole number >= 1")
    return value


def _seconds(value: Any) -> float:
    try:
        number = float(value) if isinstance(value, str | int | float) else math.nan
    except ValueError:
        number = math.nan
    if isinstance(value, bool) or not 0 < number < math.inf:
        raise ValueError("a number of seconds > 0")
    return number


def history_from_config(config: Mapping[str, Any]) -> History:
    """Build the history the configuration asks for.

    Reads ``moksha.livesocket.history.size`` (events per topic, 100),
    ``moksha.livesocket.history.age`` (seconds, 300) and
    ``moksha.livesocket.history.url`` (unset: in memory, lost on restart;
    ``sqlite:///path/to/file.sqlite``, relative to the working directory, or
    ``sqlite:////absolute/path``: kept in that database across restarts).

    Args:
        config: a :class:`~moksha.config.Config` or any mapping of key names.

    Returns:
        A :class:`MemoryHistory` or a :class:`~moksha.livesocket.history_sql.SqlHistory`;
        use it as an async context manager.

    Raises:
        ConfigError: a value is invalid, naming the key and where it came from.
    """
    size = _read(config, SIZE_KEY, 100, _size)
    age = _read(config, AGE_KEY, 300.0, _seconds)
    url = config.get(URL_KEY)
    if url is None or (isinstance(url, str) and not url.strip()):
        return MemoryHistory(size, age)
    from moksha.livesocket.history_sql import SqlHistory

    try:
        return SqlHistory(url.strip() if isinstance(url, str) else url, size, age)
    except ConfigError as exc:
        raise ConfigError(str(exc), key=URL_KEY, source=_source(config, URL_KEY)) from exc


def __getattr__(name: str) -> Any:
    # SqlHistory lives in its own module so that a memory-only hub never imports SQLAlchemy.
    if name == "SqlHistory":
        from moksha.livesocket.history_sql import SqlHistory

        return SqlHistory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
