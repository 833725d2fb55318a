"""What a durable queue's subscription does with a message its patterns do not match.

Such a message reached the queue through a binding this release no longer
has: it was queued before the binding was removed (the consumer moved from
``X.old`` to ``X.new`` while its queue kept filling), or, during a rolling
upgrade, through the binding of the other release that shares the queue.
It is never handed to ``consume()``:

* when another live release of the consumer subscribes to its topic and this
  is its first delivery, it is nacked with requeue, so that a hub of that
  release can take it (once only: a redelivered one is not bounced again, so
  a message never circles between hubs);
* otherwise it is **dead-lettered**: published, with a publisher confirm, to
  the durable queue ``<queue>:dead-letter`` (same body and properties, plus
  the headers ``moksha-dead-letter`` = its topic and
  ``moksha-dead-letter-reason`` = a sentence saying which patterns it missed),
  then acked.  That queue is bounded: it keeps the newest ``DEAD_LETTER_LIMIT``
  (100,000) dead letters, the broker dropping the oldest.  ``moksha queues``
  shows how many wait there; an operator can
  re-publish or drop them, and ``moksha queues prune`` deletes them with an
  orphan queue.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pamqp.common import FieldValue

from moksha.hub.backends.amqp_options import delivery_topic
from moksha.hub.backends.amqp_registry import dead_letter_queue
from moksha.hub.backends.base import DEAD_LETTER_HEADER, DEAD_LETTER_REASON_HEADER
from moksha.topics import TopicRouter

__all__ = ["StaleFilter"]

log = logging.getLogger(__name__)

DEAD_LETTER_LIMIT = 100_000
"""Dead letters kept per queue; past it the broker drops the oldest (``drop-head``)."""
DEAD_LETTER_BOUND: dict[str, FieldValue] = {
    "x-max-length": DEAD_LETTER_LIMIT,
    "x-overflow": "drop-head",
}


class StaleFilter:
    """Tells the deliveries a subscription wants from the stale ones, and settles the latter.

    Args:
        patterns: the subscription's patterns.

    Attributes:
        others: the patterns of the consumer's other live releases (set once
            the queue's bindings were applied).
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self._mine: TopicRouter[bool] = TopicRouter()
        for pattern in patterns:
            self._mine.add(pattern, True)
        self._others: TopicRouter[bool] = TopicRouter()
        self._declared: set[str] = set()
        self.dead_lettered = 0

    @property
    def others(self) -> tuple[str, ...]:
        return tuple(self._others.patterns())

    @others.setter
    def others(self, patterns: Sequence[str]) -> None:
        router: TopicRouter[bool] = TopicRouter()
        for pattern in patterns:
            router.add(pattern, True)
        self._others = router

    def wanted(self, delivery: AbstractIncomingMessage) -> bool:
        """Whether ``delivery``'s topic matches one of the subscription's patterns."""
        return bool(self._mine.match(delivery_topic(delivery)))

    async def settle(
        self, delivery: AbstractIncomingMessage, queue: str, channel: AbstractChannel
    ) -> None:
        """Requeue ``delivery`` for another release, or dead-letter it (see the module docstring).

        Args:
            delivery: a delivery :meth:`wanted` refused.
            queue: the durable queue it came from.
            channel: the subscription's channel, opened with publisher confirms.
        """
        topic = delivery_topic(delivery)
        if not delivery.redelivered and self._others.match(topic):
            await delivery.nack(requeue=True)
            return
        target = dead_letter_queue(queue)
        if target not in self._declared:
            await channel.declare_queue(target, durable=True, arguments=DEAD_LETTER_BOUND)
            self._declared.add(target)
        reason = (
            f"topic {topic!r} matches none of the patterns ({', '.join(self.patterns)}) of the "
            f"consumer reading queue {queue}: it was queued through a binding since removed"
        )
        headers = dict(delivery.headers or {})
        headers[DEAD_LETTER_HEADER] = topic
        headers[DEAD_LETTER_REASON_HEADER] = reason
        await channel.default_exchange.publish(
            aio_pika.Message(
                delivery.body,
                headers=headers,
                content_type=delivery.content_type,
                content_encoding=delivery.content_encoding,
                message_id=delivery.message_id,
                timestamp=delivery.timestamp,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=target,
        )
        await delivery.ack()
        self.dead_lettered += 1
        log.warning("amqp: dead-lettered a message to %s: %s", target, reason)
