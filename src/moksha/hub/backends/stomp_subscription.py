"""One STOMP subscription: its bounded queue of deliveries and the task that handles them.

The connection's reader must never wait for a handler (it also reads the
broker's heart-beats and receipts), so each MESSAGE frame is queued on its
subscription and a task per subscription hands the messages to the handler,
in the order they arrived.  A handler slower than the inflow fills the queue
(``moksha.consumer_backlog`` deliveries); the reader then stops reading, which
pushes back on the broker through TCP, and the connection's watchdog knows
the silence is ours (:attr:`StompConnection.paused`).  With client acks the
queue has room for the whole ``prefetch-count`` (the broker's bound), so it
never fills: a handler that publishes and waits for the receipt (a retry, a
dead letter) is never stuck behind a paused reader.

With ``concurrency`` N > 1 (a consumer with N workers) up to N messages are
in the handler at once (``prefetch-count`` is at least N), each ACKed when its
own handler call returned: order is then not kept.

On a group's durable queue, a message whose topic matches none of the
patterns came through a binding a previous release made (STOMP cannot remove
one): it is never handed to the handler.  During a rolling upgrade (with
``stomp_amqp_url``), one another live release of the consumer subscribes to
is NACKed once (requeued) for that release's hubs; otherwise it is SENT, with the headers
``moksha-dead-letter`` (its topic) and ``moksha-dead-letter-reason``, to
``/queue/moksha.stomp.<group>:dead-letter`` (bounded: the newest
``DEAD_LETTER_LIMIT`` are kept), and acked once the broker confirmed it.

With ``client-individual`` acks, a message is ACKed after its handler
returned, NACKed when it raised (if ``stomp_send_explicit_nacks``), and a
delivery whose connection was lost meanwhile is skipped: the broker delivers
it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from moksha.errors import MokshaError
from moksha.hub.backends.base import (
    DEAD_LETTER_HEADER,
    DEAD_LETTER_REASON_HEADER,
    Handler,
    Subscription,
    deliver,
)
from moksha.hub.backends.stomp_options import message_from_frame
from moksha.topics import TopicRouter, matches

if TYPE_CHECKING:
    from moksha.hub.backends.stomp_connection import StompConnection
    from moksha.hub.backends.stomp_options import StompOptions
    from moksha.hub.backends.stomp_protocol import Frame
    from moksha.message import Message

__all__ = ["GROUP_QUEUE_PREFIX", "StompSubscription", "dead_letter_destination"]

log = logging.getLogger(__name__)

GROUP_QUEUE_PREFIX = "moksha.stomp."
"""Prefix of the durable queue a consumer group shares (RabbitMQ ``x-queue-name``)."""

DEAD_LETTER_TIMEOUT = 5.0  # the broker's receipt for a dead letter
DEAD_LETTER_LIMIT = 100_000
"""Dead letters kept per group; past it RabbitMQ drops the oldest (``drop-head``)."""


def dead_letter_destination(group: str) -> str:
    """Where a group's messages for removed patterns go (a durable queue on RabbitMQ)."""
    return f"/queue/{GROUP_QUEUE_PREFIX}{group}:dead-letter"


_Delivery = tuple["StompConnection | None", "Frame | None"]
_WAKE_UP: _Delivery = (None, None)  # unblocks a dispatcher whose subscription was cancelled


class StompSubscription(Subscription):
    """Deliveries for ``handler`` of messages matching ``patterns``; made by the backend.

    Args:
        patterns: topic patterns, each one SUBSCRIBE.
        handler: awaited once per message.
        group: consumer-group name, or None.
        options: the backend's options (ack mode, prefix, prefetch).
        backlog: how many deliveries may wait for the handler.
        concurrency: messages in the handler at once (see the module docstring).
        current: returns the backend's current connection (acks go only there).
        cancel: the backend's way to cancel this subscription.
    """

    def __init__(
        self,
        patterns: tuple[str, ...],
        handler: Handler,
        group: str | None,
        *,
        options: StompOptions,
        backlog: int,
        concurrency: int = 1,
        current: Callable[[], StompConnection | None],
        cancel: Callable[[StompSubscription], Awaitable[None]],
    ) -> None:
        self.patterns = patterns
        self.handler = handler
        self.group = group
        self.connection: StompConnection | None = None  # the one its SUBSCRIBEs went to
        self.marker: str | None = None  # its liveness marker, with stomp_amqp_url
        # Patterns of the other live releases of its consumer (with stomp_amqp_url).
        self.others: TopicRouter[bool] = TopicRouter()
        self.cancelled = False
        self._options = options
        self._concurrency = concurrency
        self._current = current
        self._cancel = cancel
        if options.client_acks:
            # The broker sends at most prefetch-count unacknowledged messages: with
            # room for them all the reader never pauses, so it keeps reading the
            # receipts that publishes from this subscription's handler wait for.
            backlog = max(backlog, options.prefetch, concurrency)
        self._queue: asyncio.Queue[_Delivery] = asyncio.Queue(backlog)
        self._router: TopicRouter[bool] = TopicRouter()
        for pattern in patterns:
            self._router.add(pattern, True)
        # STOMP subscription id -> index of its pattern, set by the backend per connection.
        self.pattern_index: dict[str, int] = {}
        self._task = asyncio.create_task(self._dispatch(), name=f"moksha stomp {patterns}")

    async def cancel(self) -> None:
        """UNSUBSCRIBE; queued deliveries are handed back (NACKed) or dropped."""
        await self._cancel(self)

    def headers(self) -> dict[str, str]:
        """The SUBSCRIBE headers besides destination, id and ack."""
        headers: dict[str, str] = {}
        if self.group is not None:
            # RabbitMQ: one durable queue, bound to every pattern, shared by the group.
            headers["durable"] = "true"
            headers["auto-delete"] = "false"
            headers["x-queue-name"] = GROUP_QUEUE_PREFIX + self.group
        if self._options.client_acks:
            headers["prefetch-count"] = str(max(self._options.prefetch, self._concurrency))
        return headers

    async def deliver(self, connection: StompConnection, frame: Frame) -> None:
        """Queue a MESSAGE frame; wait (pausing the connection's reader) while the queue is full."""
        if not self._queue.full():
            self._queue.put_nowait((connection, frame))
            return
        connection.paused = True
        try:
            await self._queue.put((connection, frame))
        finally:
            connection.resumed()

    async def _dispatch(self) -> None:
        if self._concurrency > 1:
            await self._dispatch_concurrently()
            return
        while True:  # until the subscription is cancelled
            connection, frame = await self._queue.get()
            if self.cancelled or connection is None or frame is None:
                return
            await self._handle(connection, frame)

    async def _dispatch_concurrently(self) -> None:
        slots = asyncio.Semaphore(self._concurrency)

        async def one(connection: StompConnection, frame: Frame) -> None:
            try:
                await self._handle(connection, frame)
            finally:
                slots.release()

        async with asyncio.TaskGroup() as handling:
            while True:  # until the subscription is cancelled
                connection, frame = await self._queue.get()
                if self.cancelled or connection is None or frame is None:
                    return
                await slots.acquire()
                handling.create_task(one(connection, frame))

    async def _handle(self, connection: StompConnection, frame: Frame) -> None:
        """Hand one MESSAGE frame to the handler; ACK or NACK it."""
        options = self._options
        client_acks = options.client_acks
        if client_acks and connection is not self._current():
            return  # its connection is gone: the broker delivers it again
        message = message_from_frame(frame, options.prefix)
        if not self._router.match(message.topic):
            if (
                client_acks
                and self.others.match(message.topic)
                and frame.headers.get("redelivered") != "true"
            ):
                connection.nack(frame)  # once, for a hub of the release that wants it
                return
            if self.group is not None and not await self._dead_letter(connection, message):
                return  # not confirmed: the broker delivers it again
            if client_acks:
                connection.ack(frame)  # the broker's matching is wider than ours
            return
        if self._copy(frame, message.topic):
            if client_acks:
                connection.ack(frame)  # the copy another of our patterns delivers
            return
        try:
            await deliver(self.handler, message)
        except Exception as exc:
            nack = client_acks and options.explicit_nacks
            log.warning(
                "stomp: handler %r failed on %s (%r)%s",
                self.handler,
                message.topic,
                exc,
                "; nacked for redelivery" if nack else "",
                extra={"topic": message.topic, "message_id": message.id, "backend": "stomp"},
            )
            if nack:
                connection.nack(frame)
            return
        if client_acks:
            connection.ack(frame)

    def _copy(self, frame: Frame, topic: str) -> bool:
        """Whether ``frame`` is a second copy of a message another of our patterns delivers.

        Without a group each pattern has its own broker queue, so a message
        matching two of them arrives twice: only the copy of the first
        matching pattern is handled (one delivery per message, as from one
        queue bound with every pattern).
        """
        if self.group is not None or len(self.patterns) < 2:
            return False
        index = self.pattern_index.get(frame.headers.get("subscription", ""))
        if index is None:
            return False
        first = next(i for i, pattern in enumerate(self.patterns) if matches(pattern, topic))
        return index != first

    async def _dead_letter(self, connection: StompConnection, message: Message) -> bool:
        """SEND a message of a removed pattern to the group's dead letters; True once confirmed."""
        assert self.group is not None
        target = dead_letter_destination(self.group)
        reason = (
            f"topic {message.topic!r} matches none of the patterns ({', '.join(self.patterns)}) "
            f"of the consumer reading queue {GROUP_QUEUE_PREFIX}{self.group}: it was queued "
            "through a binding since removed"
        )
        headers = dict(message.headers)
        headers[DEAD_LETTER_HEADER] = message.topic
        headers[DEAD_LETTER_REASON_HEADER] = reason
        headers["persistent"] = "true"
        # RabbitMQ declares the queue on the first SEND with this argument: bounded
        # (its default overflow policy drops the oldest).
        headers["x-max-length"] = str(DEAD_LETTER_LIMIT)
        try:
            connection.send(target, message.payload, headers)
            async with asyncio.timeout(DEAD_LETTER_TIMEOUT):
                await connection.sync()
        except (ConnectionError, TimeoutError, MokshaError) as exc:
            # Lost (ConnectionLost), silent, or an ERROR frame (StompServerError).
            log.warning("stomp: could not dead-letter a message to %s (%s)", target, exc)
            return False
        log.warning("stomp: dead-lettered a message to %s: %s", target, reason)
        return True

    async def stop(self) -> None:
        """Hand back what waits in the queue and stop the dispatcher task."""
        self.cancelled = True
        while not self._queue.empty():
            connection, frame = self._queue.get_nowait()
            if self._options.client_acks and connection is not None and frame is not None:
                connection.nack(frame)
        task = self._task
        if task.done():
            return
        if task is asyncio.current_task():
            # Cancelled from its own handler: wake the dispatcher, which returns
            # once the handler did.
            self._queue.put_nowait(_WAKE_UP)
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
