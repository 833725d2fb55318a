"""Durable AMQP queues whose bindings follow the code.

What was applied is kept in the queue registry on the broker
(:mod:`moksha.hub.backends.amqp_registry`: records, lock, liveness markers).

When a subscription starts (:func:`follow_code`), the queue's bindings become
its patterns, plus the patterns of every other *live* release of the same
consumer: missing bindings are added, the others removed.  So during a
rolling upgrade, while hubs of two releases share the queue, it is bound to
the union of both (nothing a running release needs disappears, and neither
release undoes the other: no flapping); when a hub stops cleanly
(:func:`leave`) and hubs of another release remain, the bindings shrink to
what those still running need.  A hub that crashed is seen as gone at the
next start or clean stop of a hub of that consumer.  A hub cut off from the
broker looks stopped meanwhile; the backend calls :func:`follow_code` again
once it has reconnected.

Which message reaches which release during the overlap is the subscription's
business (see :mod:`moksha.hub.backends.amqp_stale`).  :func:`inventory` and
:func:`remove` serve ``moksha queues``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from moksha.errors import BackendError
from moksha.hub.backends.amqp_registry import (
    QueueRecord,
    Registry,
    dead_letter_queue,
    registry_queue,
)
from moksha.hub.backends.base import DurableQueue

__all__ = ["Applied", "follow_code", "inventory", "leave", "remove"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of :func:`follow_code`.

    Attributes:
        bindings: what the queue is bound to now.
        others: the patterns of the other live releases (the overlap of a rolling upgrade).
    """

    bindings: tuple[str, ...]
    others: tuple[str, ...]


async def follow_code(
    url: str,
    prefix: str,
    *,
    exchange: str,
    queue: str,
    group: str,
    patterns: Sequence[str],
    marker: str,
) -> Applied:
    """Bind ``queue`` to ``patterns`` and to the other live releases' patterns; nothing else.

    The liveness ``marker`` must exist (the subscription declares it first); the
    durable queue is declared here when missing, so that one older than its
    record can be told from a new one.

    Args:
        url: the broker's AMQP URL.
        prefix: ``amqp_queue_prefix``.
        exchange: the exchange to bind to.
        queue: the durable queue.
        group: the consumer group it serves.
        patterns: the starting subscription's patterns.
        marker: its liveness marker.

    Returns:
        The bindings applied, and the other live releases' patterns.

    Raises:
        BackendError: the registry's lock stayed taken.
    """
    async with Registry.open(url, prefix) as registry:
        existed = await registry.ensure_queue(queue)
        record = registry.records.get(queue)
        if record is None:
            record = QueueRecord(queue, group, exchange)
            if existed:
                _warn_unrecorded(queue)
        elif not existed:  # deleted behind Moksha's back: its bindings went with it
            record = replace(record, bindings=())
        others = await registry.live_releases(record)
        others.pop(marker, None)
        target = set(patterns).union(*others.values())
        record = await registry.bind(replace(record, exchange=exchange), target)
        record = replace(record, releases={**others, marker: tuple(patterns)})
        await registry.save(record, queue)
        other_patterns = tuple(sorted(set().union(*others.values()) - set(patterns)))
        if other_patterns:
            log.warning(
                "amqp: another release of %s runs with other patterns; queue %s stays bound "
                "to both until it stops (%s)",
                group,
                queue,
                ", ".join(other_patterns),
            )
        return Applied(record.bindings, other_patterns)


def _warn_unrecorded(queue: str) -> None:
    log.warning(
        "amqp: queue %s existed before Moksha recorded its bindings; bindings made "
        "before cannot be listed over AMQP 0-9-1 and are left as they are. Delete the "
        "queue once (rabbitmqctl delete_queue %s) to start it clean.",
        queue,
        queue,
    )


async def leave(url: str, prefix: str, *, queue: str, marker: str) -> None:
    """A subscription stops cleanly: drop its release; shrink the bindings to what still runs.

    When no other release runs, the bindings stay as they are: messages keep
    waiting in the queue for the next start.
    """
    async with Registry.open(url, prefix) as registry:
        record = registry.records.get(queue)
        if record is None or marker not in record.releases:
            return
        others = await registry.live_releases(record)
        others.pop(marker, None)
        if others:
            record = await registry.bind(record, set().union(*others.values()))
        await registry.save(replace(record, releases=others), queue)


async def inventory(url: str, prefix: str) -> list[DurableQueue]:
    """Every durable queue in the registry that still exists, with its state.

    Records of queues deleted behind Moksha's back (``rabbitmqctl``) are dropped.
    """
    queues = []
    async with Registry.open(url, prefix) as registry:
        for name, record in sorted(registry.records.items()):
            state = await registry.queue_state(name)
            if state is None:
                await registry.save(None, name)
                continue
            dead = await registry.queue_state(dead_letter_queue(name))
            depth, consumers = state
            queues.append(
                DurableQueue(
                    name, record.group, depth, consumers, record.bindings, dead[0] if dead else 0
                )
            )
    return queues


async def remove(url: str, prefix: str, name: str) -> None:
    """Delete queue ``name`` and its dead letters, if Moksha created it and nobody reads it.

    Raises:
        BackendError: not in the registry, or consumers are attached.
    """
    async with Registry.open(url, prefix) as registry:
        if name not in registry.records:
            raise BackendError(
                f"amqp: queue {name!r} is not in Moksha's queue registry "
                f"{registry_queue(prefix)!r}; Moksha deletes only the queues it created"
            )
        state = await registry.queue_state(name)
        if state is not None and state[1] > 0:
            raise BackendError(
                f"amqp: queue {name!r} has {state[1]} consumer(s) attached: a hub still runs "
                "its consumer; stop it first"
            )
        await registry.delete(name)
