"""Reading how many messages wait in the broker for each consumer.

A consumer's backlog (``Consumer.stats()["backlog"]``) counts what the hub
holds in memory; a durable queue can hold far more, out of the hub's sight,
while the hub is slow or stopped.  The hub reads that depth every
``moksha.queue_depth_interval`` seconds from each subscription
(:meth:`~moksha.hub.backends.Subscription.waiting`) and keeps it on the
consumer (``Consumer.queue_depth``), where the dashboard's hub status,
``/metrics`` (``moksha_consumer_queue_depth``) and ``/ready`` (degraded past
``moksha.queue_depth_limit``) find it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moksha.hub.api import Consumer
    from moksha.hub.backends import Subscription

__all__ = ["read_queue_depths", "watch_queue_depths"]

log = logging.getLogger(__name__)

Watched = Callable[[], Iterable[tuple["Consumer", Sequence["Subscription"]]]]


async def read_queue_depths(watched: Watched) -> None:
    """Set each consumer's ``queue_depth`` to what waits for it now (None: unknown)."""
    for consumer, subscriptions in list(watched()):
        depths = [await subscription.waiting() for subscription in subscriptions]
        known = [depth for depth in depths if depth is not None]
        consumer.queue_depth = sum(known) if known else None


async def watch_queue_depths(watched: Watched, interval: float) -> None:
    """Read the depths every ``interval`` seconds, until cancelled.

    Args:
        watched: returns the running consumers with their subscriptions.
        interval: seconds between two reads.
    """
    while True:  # until the hub stops and cancels it
        try:
            await read_queue_depths(watched)
        except Exception:  # a broker hiccup must not end the watch
            log.exception("could not read the queue depths")
        await asyncio.sleep(interval)
