"""The contract of a cluster store: what several Moksha nodes share.

A :class:`ClusterStore` keeps, for every node of one cluster:

* the live-socket history, bounded per topic, with ONE offset counter for the
  whole cluster and an epoch naming the counter's lifetime: an event id is
  ``"<epoch>-<offset>"`` whichever node a client is on (see
  :mod:`moksha.livesocket.history` for the id's form);
* node heartbeats that expire unless renewed (which nodes are alive, what they serve);
* leader locks that expire unless renewed (which node runs a singleton producer).

Every node receives each broker message on its own queue and asks the store
for its offset with the message's id: the first node to ask assigns the next
offset and stores the event, the others get the same offset back, so ids and
history agree across nodes without anyone electing a writer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from moksha.errors import MokshaError

__all__ = ["Bounds", "ClusterError", "ClusterStore", "StoredEvent"]


class ClusterError(MokshaError):
    """The cluster's shared store failed (unreachable, refused a command)."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """How much history the store keeps.

    Attributes:
        size: events per topic.
        age: seconds an event is kept.
        topics: topics kept (the least recently appended go first).
    """

    size: int = 100
    age: float = 300.0
    topics: int = 10000


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event of the shared history: its offset, topic, JSON body and when it was stored."""

    offset: int
    topic: str
    payload: str
    time: float


class ClusterStore(ABC):
    """Shared state of a cluster; an async context manager (``open`` on enter).

    Attributes:
        bounds: how much live-socket history it keeps.
    """

    bounds: Bounds

    @abstractmethod
    async def open(self) -> None:
        """Connect, and create what is missing (the epoch, tables).

        Raises:
            MokshaError: the store cannot be reached, with the fix.
        """

    @abstractmethod
    async def aclose(self) -> None:
        """Disconnect."""

    @abstractmethod
    async def epoch(self) -> str:
        """The epoch of the cluster's offset counter (fixed while the store keeps its data)."""

    @abstractmethod
    async def append(self, topic: str, payload: str, key: str | None, now: float) -> int:
        """The offset of a message, stored with it by whichever node asks first.

        Args:
            topic: the message's topic.
            payload: its body as JSON text.
            key: the message's id: every node asking with the same key gets the
                same offset, and the event is stored once.  None: always a new one.
            now: the time to store it with (seconds since the Unix epoch).
        """

    @abstractmethod
    async def offset(self) -> int:
        """The newest offset given so far (0 before the first)."""

    @abstractmethod
    async def mark_gap(self) -> None:
        """Say that messages up to now may have gone unrecorded.

        The offset counter moves on by one and that offset becomes the store-wide
        marker: a client whose last id was issued before is told
        ``recovered: false`` from then on, as the history cannot vouch for what
        it missed (a message nobody recorded never got an offset to compare).
        """

    @abstractmethod
    async def since(self, pattern: str, last: int, now: float) -> tuple[list[StoredEvent], bool]:
        """The events after offset ``last`` on ``pattern``, oldest first, and whether complete.

        Complete is False when ``last`` is beyond the counter, or a matching
        event after it was evicted (by size, age or its topic being dropped).
        """

    @abstractmethod
    async def recent(self, pattern: str, count: int, cutoff: float) -> list[StoredEvent]:
        """The newest ``count`` events on ``pattern`` since ``cutoff``, oldest first."""

    @abstractmethod
    async def heartbeat(self, node: str, info: dict[str, Any], ttl: float) -> None:
        """Say that ``node`` is alive for ``ttl`` seconds, with what it reports."""

    @abstractmethod
    async def leave(self, node: str) -> None:
        """Say that ``node`` stopped (its heartbeat goes at once)."""

    @abstractmethod
    async def nodes(self) -> dict[str, dict[str, Any]]:
        """The nodes alive (heartbeat not expired) and what each reported."""

    @abstractmethod
    async def acquire(self, name: str, node: str, ttl: float) -> bool:
        """Take or renew the lock ``name`` for ``node`` for ``ttl`` seconds.

        Returns:
            True when ``node`` holds it now; False when another node does.
        """

    @abstractmethod
    async def release(self, name: str, node: str) -> None:
        """Give up the lock ``name`` if ``node`` holds it."""

    @abstractmethod
    async def leaders(self) -> dict[str, str]:
        """Lock name → the node holding it, for the locks held now."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
