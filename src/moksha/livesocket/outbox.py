"""A connection's bounded queue of frames waiting to be written to a slow client.

The queue holds at most ``size`` frames.  When it is full, memory does not
grow: under ``conflate`` (for dashboards) each topic keeps only its newest
frame, older ones are dropped and counted; under ``disconnect`` :meth:`put`
says the client must go.  Control frames (errors, recovery notices) always
get in.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque

__all__ = ["Outbox"]


class Outbox:
    """Frames for one client, oldest first.

    Args:
        size: the most message frames waiting.
        conflate: when full, keep the newest frame per topic instead of refusing.
    """

    def __init__(self, size: int, *, conflate: bool) -> None:
        self.size = size
        self.conflate = conflate
        self.dropped = 0
        self.closed = False
        self._control: deque[str] = deque()
        self._frames: deque[str] = deque()
        # Under conflation, once full: the newest frame of each topic, in arrival order.
        self._latest: OrderedDict[str, str] = OrderedDict()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        """Message frames waiting (control frames aside)."""
        return len(self._frames) + len(self._latest)

    def put(self, topic: str, frame: str) -> bool:
        """Queue a message frame; False means the client is too slow and must be disconnected."""
        if len(self) < self.size and not self._latest:
            self._frames.append(frame)
        elif not self.conflate:
            return False
        elif topic in self._latest:
            self._latest[topic] = frame
            self._latest.move_to_end(topic)
            self.dropped += 1
        else:
            if len(self) >= self.size:  # make room: the oldest frame goes
                if self._frames:
                    self._frames.popleft()
                else:
                    self._latest.popitem(last=False)
                self.dropped += 1
            self._latest[topic] = frame
        self._ready.set()
        return True

    def put_control(self, frame: str) -> None:
        """Queue a frame that is never dropped (replayed history, errors, notices).

        Control frames go out before message frames queued at the same time.
        """
        self._control.append(frame)
        self._ready.set()

    def close(self) -> None:
        """Wake the writer so it can finish."""
        self.closed = True
        self._ready.set()

    async def get_batch(self) -> list[str]:
        """Wait for frames and take them all; an empty list once closed."""
        while not (self._control or self._frames or self._latest):
            if self.closed:
                return []
            self._ready.clear()
            await self._ready.wait()
        return self.take()

    def take(self) -> list[str]:
        """Take every frame waiting, control frames first, without waiting."""
        batch = [*self._control, *self._frames, *self._latest.values()]
        self._control.clear()
        self._frames.clear()
        self._latest.clear()
        return batch
