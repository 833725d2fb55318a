"""Per-feed backoff: a feed that keeps failing is asked less and less often.

After the n-th failure in a row a feed waits ``base * 2**(n-1)`` seconds, at
most ``cap``, before it is tried again; one success resets it.  With the feed
stream's ``base`` = ``feed.poll_frequency`` (300 s) and ``cap`` =
``feed.max_backoff`` (3600 s), a dead feed is tried after 5, 10, 20, 40 and
60 minutes, then hourly, and the other feeds are polled as usual meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(slots=True)
class _State:
    failures: int
    retry_at: float


class Backoff:
    """When each failing key (a feed URL) may be tried again.

    Args:
        base: the wait after the first failure, in seconds.
        cap: the longest wait.
        clock: returns the time in seconds (monotonic); tests give their own.

    Raises:
        ValueError: ``base`` is not positive or ``cap`` is below it.
    """

    def __init__(
        self, base: float, cap: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not base > 0 or cap < base:
            raise ValueError("the backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self._clock = clock
        self._failing: dict[str, _State] = {}

    def ready(self, key: str) -> bool:
        """Whether ``key`` may be tried now (never failed, or its wait is over).

        A tenth of ``base`` is allowed early, so a poll on a fixed schedule is
        not skipped for being a few milliseconds ahead of the retry time.
        """
        state = self._failing.get(key)
        return state is None or self._clock() + self.base / 10 >= state.retry_at

    def failed(self, key: str, since: float | None = None) -> float:
        """Record a failure of ``key``.

        Args:
            key: what failed.
            since: when the attempt started (the wait counts from there);
                default: now.

        Returns:
            Seconds until ``key`` may be tried again.
        """
        state = self._failing.setdefault(key, _State(0, 0.0))
        state.failures += 1
        delay = min(self.cap, self.base * 2.0 ** (state.failures - 1))
        start = self._clock() if since is None else since
        state.retry_at = start + delay
        return delay

    def succeeded(self, key: str) -> int:
        """Record a success of ``key``; return how many failures in a row it ends (0: none)."""
        state = self._failing.pop(key, None)
        return 0 if state is None else state.failures

    def failures(self, key: str) -> int:
        """How many times in a row ``key`` failed."""
        state = self._failing.get(key)
        return 0 if state is None else state.failures

    def failing(self) -> dict[str, int]:
        """Every failing key and its failures in a row."""
        return {key: state.failures for key, state in self._failing.items()}
