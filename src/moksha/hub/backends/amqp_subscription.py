"""One AMQP subscription: a consumer on its own channel, handled in order, acked in batches.

Each subscription opens a robust channel with ``basic.qos(amqp_prefetch)``,
declares its queue (the durable ``<amqp_queue_prefix>.<group>``, or an
exclusive auto-delete ``<amqp_queue_prefix>.exclusive.<uuid>``), binds it to
the exchange with each pattern and consumes it.  aio-pika restores all of that
after a reconnection.  A durable queue is bound differently: through the queue
registry (:mod:`~moksha.hub.backends.amqp_bindings`), which also removes the
bindings no running release needs any more, and a delivery matching none of
the patterns is never handed to the handler
(:mod:`~moksha.hub.backends.amqp_stale`).

aio-pika calls the consumer once per delivery, in a task of its own; the
subscription puts each delivery in an inbox.  One worker takes every delivery
waiting there at once (at most ``amqp_prefetch``) and hands them to the
handler one after the other, in order, each once the previous one is done
with (:func:`~moksha.hub.backends.base.deliver`).  Settling is per batch:
each run of deliveries whose handler returned is acked with a single
``basic.ack(multiple)`` on its last delivery; a delivery whose handler raised
ends the run: the run is acked, then that delivery is nacked with requeue
(the broker redelivers it; later multiple acks no longer cover it).  So every
delivery is settled exactly once, with one socket write per batch instead of
one per message.  A run is also acked once
it has waited ``ACK_INTERVAL`` (slow handlers keep acking as they go), and
when the worker stops, so what was handled is not handled again.

Why not start the handlers of a batch all at once (pipelining)?  It would
run ``async def`` handlers concurrently, out of order; even calling the
handler for the next delivery before awaiting the previous one lets a hub
runner's worker threads free room in a full backlog between two calls, so a
later message can overtake an earlier one.  And once acks are batched,
pipelining gained nothing measurable in ``benchmarks/bench_amqp.py``.

With ``concurrency`` N > 1 (a consumer with N workers) the worker instead
keeps up to N deliveries in the handler at once (the channel's prefetch is at
least N) and settles each with its own ack or nack when its handler call
returns: order is then not kept.

A delivery whose channel died before it was handled is dropped, and an ack or
nack on a dead channel is logged and skipped: the broker redelivers every
unacknowledged delivery on the restored channel (at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustQueue,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, AMQPChannelError, DeliveryError

from moksha.errors import BackendError
from moksha.hub.backends.amqp_bindings import follow_code, leave
from moksha.hub.backends.amqp_connection import honour_cancellation
from moksha.hub.backends.amqp_options import from_amqp
from moksha.hub.backends.amqp_registry import live_marker
from moksha.hub.backends.amqp_stale import StaleFilter
from moksha.hub.backends.base import Handler, Subscription, deliver

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["AMQPSubscription", "discard", "refused"]

log = logging.getLogger(__name__)

SETUP_TIMEOUT = 10.0  # opening a channel on a connection that just died waits forever
CANCEL_TIMEOUT = 5.0  # basic.cancel + channel.close when a subscription ends
# The longest a handled delivery waits for the ack of its batch: short enough that
# slow handlers keep acking as they go (and never meet the broker's consumer_timeout
# with a whole batch), long enough that a batch of fast ones costs a single ack.
ACK_INTERVAL = 0.05


def refused(exc: BaseException) -> bool:
    """Whether the broker said no (retrying cannot help), as opposed to a lost connection."""
    return isinstance(exc, AMQPChannelError | DeliveryError)


async def discard(channel: AbstractRobustChannel) -> None:
    """Close a channel that failed to set up, so the robust connection does not restore it."""
    with contextlib.suppress(*CONNECTION_EXCEPTIONS):
        async with asyncio.timeout(CANCEL_TIMEOUT):
            await channel.close()


class AMQPSubscription(Subscription):
    """One consumer on its own channel, with a worker that handles deliveries in order.

    Args:
        patterns: topic patterns, bound as routing keys.
        handler: awaited once per delivery.
        queue: the durable queue's name, or None for an exclusive auto-delete queue.
        config: the backend's configuration (prefetch, queue prefix).
        url: the broker's URL (the queue registry opens a connection of its own).
        group: the consumer group the durable queue serves.
        declare_exchange: returns the configured exchange on a channel.
        forget: called once when the subscription is cancelled.
        concurrency: deliveries handled at once (see the module docstring).
    """

    def __init__(
        self,
        patterns: Sequence[str],
        handler: Handler,
        queue: str | None,
        config: Config,
        declare_exchange: Callable[[AbstractRobustChannel], Awaitable[AbstractExchange]],
        forget: Callable[[AMQPSubscription], None],
        *,
        url: str = "",
        group: str | None = None,
        concurrency: int = 1,
    ) -> None:
        self.patterns = tuple(patterns)
        self._concurrency = concurrency
        self._handler = handler
        self._config = config
        self._declare_exchange = declare_exchange
        self._forget = forget
        self._durable_queue = queue
        self._url = url
        self._group = group or ""
        # Durable queues only: its bindings follow the code (amqp_bindings), and what
        # still arrives for a removed pattern is dead-lettered (amqp_stale).
        self._marker = live_marker(config.amqp_queue_prefix)
        self._stale = StaleFilter(self.patterns) if queue is not None else None
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractRobustQueue | None = None
        self._tag: str | None = None
        # Bounded by the broker: at most amqp_prefetch unacked deliveries per channel,
        # plus those of a channel lost meanwhile, which the worker drops unhandled.
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.cancelled = False

    @property
    def started(self) -> bool:
        return self._channel is not None

    async def start(self, connection: AbstractRobustConnection) -> None:
        """Open the channel, declare and bind the queue, consume; undone if any step fails."""
        config = self._config
        # Confirms only matter to the dead letters a durable queue's subscription publishes.
        channel = connection.channel(publisher_confirms=self._stale is not None)
        try:
            async with asyncio.timeout(SETUP_TIMEOUT):
                await channel.initialize()
                prefetch = max(config.amqp_prefetch, self._concurrency)
                await channel.set_qos(prefetch_count=prefetch)
                exchange = await self._declare_exchange(channel)
                if self._durable_queue is None:
                    name = f"{config.amqp_queue_prefix}.exclusive.{uuid.uuid4().hex}"
                    queue = await channel.declare_queue(name, exclusive=True, auto_delete=True)
                    for pattern in self.patterns:
                        await queue.bind(exchange, routing_key=pattern)
                else:  # alive before the registry can see it
                    await channel.declare_queue(self._marker, exclusive=True)
            if self._durable_queue is not None:
                followed = await self._follow_code(self._durable_queue, exchange.name)
                async with asyncio.timeout(SETUP_TIMEOUT):
                    queue = await channel.declare_queue(self._durable_queue, durable=True)
                    if not followed:  # consuming matters more than tidying: bind ours
                        for pattern in self.patterns:
                            await queue.bind(exchange, routing_key=pattern)
            async with asyncio.timeout(SETUP_TIMEOUT):
                self._tag = await queue.consume(self._deliver)
        except BaseException:
            await discard(channel)
            raise
        if self.cancelled:  # cancel() ran while this was being set up
            await discard(channel)
            return
        self._channel, self._queue = channel, queue
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name=f"moksha-amqp {queue.name}")

    async def rebind(self, patterns: Sequence[str]) -> bool:
        """Bind the new patterns and unbind the old on this subscription's exclusive queue.

        A durable queue's bindings follow the code instead (:mod:`.amqp_bindings`): False.

        Raises:
            BackendError: the broker refused a binding.
        """
        if self._durable_queue is not None:
            return False
        wanted = tuple(dict.fromkeys(patterns))
        queue, channel = self._queue, self._channel
        if queue is not None and channel is not None:
            try:
                async with asyncio.timeout(SETUP_TIMEOUT):
                    exchange = await self._declare_exchange(channel)
                    for pattern in wanted:
                        if pattern not in self.patterns:
                            await queue.bind(exchange, routing_key=pattern)
                    for pattern in self.patterns:
                        if pattern not in wanted:
                            await queue.unbind(exchange, routing_key=pattern)
            except (TimeoutError, AMQPChannelError, *CONNECTION_EXCEPTIONS) as exc:
                raise BackendError(f"amqp: could not bind {list(wanted)}: {exc}") from exc
        # Unstarted or reconnecting: start() binds these (aio-pika restores the rest).
        self.patterns = wanted
        return True

    async def _follow_code(self, queue: str, exchange: str) -> bool:
        """Make the durable queue's bindings this subscription's patterns (amqp_bindings).

        The bindings are made on the registry's own connection, not on this
        robust channel, so aio-pika does not restore stale ones on reconnection
        (bindings of a durable queue survive broker restarts anyway).

        Returns:
            False when the registry's lock stayed taken (nothing was bound).
        """
        assert self._stale is not None
        try:
            applied = await follow_code(
                self._url,
                self._config.amqp_queue_prefix,
                exchange=exchange,
                queue=queue,
                group=self._group,
                patterns=self.patterns,
                marker=self._marker,
            )
        except BackendError as exc:
            log.error("%s; queue %s keeps any stale bindings until the next start", exc, queue)
            return False
        self._stale.others = applied.others
        return True

    async def refresh(self) -> None:
        """Apply the durable queue's bindings again, once reconnected.

        While this hub was cut off, its liveness marker was gone: a hub of
        another release starting meanwhile took it for stopped and may have
        removed the bindings only this release needs.  Errors are logged: the
        subscription keeps consuming what its queue holds.
        """
        if self._stale is None or self._durable_queue is None or self._channel is None:
            return
        try:
            await self._follow_code(self._durable_queue, self._config.amqp_exchange)
        except CONNECTION_EXCEPTIONS as exc:
            log.warning("amqp: could not bind %s again (%s)", self._durable_queue, exc)

    async def _dead_letter(self, delivery: AbstractIncomingMessage) -> None:
        """Settle a delivery for a removed pattern; on a dead channel, leave it to redelivery."""
        assert self._stale is not None and self._durable_queue is not None
        channel = self._channel
        if channel is None:
            return
        try:
            await self._stale.settle(delivery, self._durable_queue, channel)
        except CONNECTION_EXCEPTIONS as exc:
            log.debug("amqp: could not dead-letter %s (%s)", delivery.routing_key, exc)

    async def _deliver(self, delivery: AbstractIncomingMessage) -> None:
        self._inbox.put_nowait(delivery)

    async def _work(self) -> None:
        if self._concurrency > 1:
            await self._work_concurrently()
            return
        inbox, most = self._inbox, self._config.amqp_prefetch
        while True:
            batch = [await inbox.get()]
            # Everything already waiting; more than the prefetch only after a reconnection.
            while len(batch) < most and not inbox.empty():
                batch.append(inbox.get_nowait())
            await self._handle(batch)
            honour_cancellation()  # stop() waits for this loop: a swallowed cancel hangs it

    async def _work_concurrently(self) -> None:
        """Up to ``concurrency`` deliveries in the handler at once, each settled on its own."""
        slots = asyncio.Semaphore(self._concurrency)

        async def one(delivery: AbstractIncomingMessage) -> None:
            try:
                try:
                    delivery.channel  # noqa: B018 - raises when the delivering channel is gone
                except aio_pika.exceptions.ChannelInvalidStateError:
                    return  # the broker redelivers it on the restored channel
                try:
                    await deliver(self._handler, from_amqp(delivery))
                except Exception as exc:
                    log.debug(
                        "amqp: handler failed on %s (%s); requeued", delivery.routing_key, exc
                    )
                    await _settle(delivery.nack(requeue=True), delivery)
                    return
                await _settle(delivery.ack(), delivery)
            finally:
                slots.release()

        async with asyncio.TaskGroup() as handling:
            while True:  # until stop() cancels the worker, and with it the handlers
                delivery = await self._inbox.get()
                await slots.acquire()
                handling.create_task(one(delivery))

    async def _handle(self, batch: list[AbstractIncomingMessage]) -> None:
        """Hand each delivery of ``batch`` to the handler in order; settle each once."""
        handler = self._handler
        clock = asyncio.get_running_loop().time
        # The end of the run handled but not yet acked.  Cleared before its ack is
        # sent, so an ack cut short by cancellation is never sent twice (the broker
        # closes the channel on an unknown delivery tag).
        last: AbstractIncomingMessage | None = None
        since = 0.0  # when that run began
        try:
            for delivery in batch:
                try:
                    delivery.channel  # noqa: B018 - raises when the delivering channel is gone
                except aio_pika.exceptions.ChannelInvalidStateError:
                    continue  # the broker redelivers it on the restored channel
                if self._stale is not None and not self._stale.wanted(delivery):
                    if last is not None:
                        run, last = last, None
                        await _settle(run.ack(multiple=True), run)
                    await self._dead_letter(delivery)
                    continue
                try:
                    await deliver(handler, from_amqp(delivery))
                except Exception as exc:
                    log.debug(
                        "amqp: handler failed on %s (%s); requeued", delivery.routing_key, exc
                    )
                    if last is not None:
                        run, last = last, None
                        await _settle(run.ack(multiple=True), run)
                    await _settle(delivery.nack(requeue=True), delivery)
                    continue
                now = clock()
                if last is None:
                    since = now
                last = delivery
                if now - since >= ACK_INTERVAL:
                    run, last = last, None
                    await _settle(run.ack(multiple=True), run)
            if last is not None:
                run, last = last, None
                await _settle(run.ack(multiple=True), run)
        except BaseException:
            # Stopped mid-batch: the rest goes back to the queue with the channel,
            # but what was handled is acked, so it is not handled twice.
            if last is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CANCEL_TIMEOUT):
                        await _settle(last.ack(multiple=True), last)
            raise

    async def waiting(self) -> int | None:
        """Messages ready in the queue (not those delivered and unacked); None while down."""
        queue = self._queue
        if queue is None:
            return None
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT):
                declared = await queue.declare()
        except (TimeoutError, *CONNECTION_EXCEPTIONS):
            return None
        return declared.message_count

    async def stop(self) -> None:
        """Stop handling deliveries (those not yet acked go back to the queue with the channel)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    async def cancel(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        self._forget(self)
        channel, queue, tag = self._channel, self._queue, self._tag
        self._channel = self._queue = self._tag = None
        # Whatever happens to the broker calls, the handler is not called again.
        await self.stop()
        if channel is None:
            return
        # An exclusive auto-delete queue goes away with its consumer; a durable one stays.
        with contextlib.suppress(*CONNECTION_EXCEPTIONS):
            async with asyncio.timeout(CANCEL_TIMEOUT):
                if queue is not None and tag is not None:
                    await queue.cancel(tag)
                if self._stale is not None:
                    await channel.queue_delete(self._marker)
                await channel.close()
        if self._stale is not None and queue is not None:
            await self._leave(queue.name)

    async def _leave(self, queue: str) -> None:
        """Tell the registry this release stops (bindings shrink to the releases still running)."""
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT):
                await leave(
                    self._url, self._config.amqp_queue_prefix, queue=queue, marker=self._marker
                )
        except (TimeoutError, BackendError, *CONNECTION_EXCEPTIONS) as exc:
            # The next start of this consumer finds the marker gone and does the same.
            log.warning("amqp: could not update the queue registry for %s (%s)", queue, exc)


async def _settle(settling: Coroutine[Any, Any, None], delivery: AbstractIncomingMessage) -> None:
    """Await an ack or a nack; on a dead channel, log it and leave it to redelivery."""
    try:
        await settling
    except CONNECTION_EXCEPTIONS:
        # The channel died after the delivery arrived: the broker redelivers
        # what was not acked on the new one, so it may be handled twice (at-least-once).
        log.debug("amqp: could not settle %s; it will be redelivered", delivery.routing_key)
