"""A connection's bounded queue of frames waiting to be written to a slow client.

The queue holds at most ``size`` frames.  When it is full, memory does not
grow: under ``conflate`` (for dashboards) each topic keeps only its newest
frame, older ones are dropped and counted; under ``disconnect`` :meth:`put`
says the client must go.  Control frames (errors, recovery notices) always
get in.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Outbox"]


class Outbox:
    """Frames for one client, oldest first.

    Most clients keep up and never have a frame waiting, and a server holds
    thousands of them: an outbox allocates nothing until it is used.

    Args:
        size: the most message frames waiting.
        conflate: when full, keep the newest frame per topic instead of refusing.
    """

    __slots__ = (
        "_control",
        "_frames",
        "_latest",
        "_ready",
        "closed",
        "conflate",
        "dropped",
        "size",
    )

    def __init__(self, size: int, *, conflate: bool) -> None:
        self.size = size
        self.conflate = conflate
        self.dropped = 0
        self.closed = False
        self._control: list[str] | None = None
        self._frames: deque[str] | None = None
        # Under conflation, once full: the newest frame of each topic, in arrival order.
        self._latest: dict[str, str] | None = None
        self._ready: asyncio.Event | None = None

    def __len__(self) -> int:
        """Message frames waiting (control frames aside)."""
        return (len(self._frames) if self._frames else 0) + (
            len(self._latest) if self._latest else 0
        )

    def put(self, topic: str, frame: str) -> bool:
        """Queue a message frame; False means the client is too slow and must be disconnected."""
        latest = self._latest
        if not latest and len(self) < self.size:
            if self._frames is None:
                self._frames = deque()
            self._frames.append(frame)
        elif not self.conflate:
            return False
        elif latest is not None and topic in latest:
            del latest[topic]  # to the end: the newest frame keeps its place in arrival order
            latest[topic] = frame
            self.dropped += 1
        else:
            if latest is None:
                latest = self._latest = {}
            if len(self) >= self.size:  # make room: the oldest frame goes
                if self._frames:
                    self._frames.popleft()
                else:
                    del latest[next(iter(latest))]
                self.dropped += 1
            latest[topic] = frame
        self._wake()
        return True

    def put_control(self, frame: str) -> None:
        """Queue a frame that is never dropped (replayed history, errors, notices).

        Control frames go out before message frames queued at the same time.
        """
        if self._control is None:
            self._control = []
        self._control.append(frame)
        self._wake()

    def close(self) -> None:
        """Wake the writer so it can finish."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._ready is not None:
            self._ready.set()

    def _waiting(self) -> bool:
        return bool(self._control or self._frames or self._latest)

    async def get_batch(self) -> list[str]:
        """Wait for frames and take them all; an empty list once closed."""
        while not self._waiting():
            if self.closed:
                return []
            if self._ready is None:
                self._ready = asyncio.Event()
            self._ready.clear()
            await self._ready.wait()
        return self.take()

    def take(self) -> list[str]:
        """Take every frame waiting, control frames first, without waiting."""
        batch = [*(self._control or ()), *(self._frames or ()), *(self._latest or {}).values()]
        self._control = self._frames = self._latest = None
        return batch
