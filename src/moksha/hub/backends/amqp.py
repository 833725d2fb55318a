"""The AMQP 0-9-1 backend (RabbitMQ), on aio-pika's robust connection.

Wire format (so non-Moksha programs interoperate both ways): messages are
published, with publisher confirms and not mandatory, to the topic exchange
``amqp_exchange`` (default ``amq.topic``; another name is declared as a durable
topic exchange), routing key = topic, JSON body, id, timestamp and headers in
the AMQP properties; :mod:`moksha.hub.backends.amqp_options` has the details.

Options: ``amqp_broker`` (see :mod:`moksha.hub.backends.amqp_options`),
``amqp_exchange``, ``amqp_prefetch`` (unacked deliveries per subscription),
``amqp_durable_queues``, ``amqp_queue_prefix``, ``amqp_heartbeat``,
``moksha.reconnect_delay`` / ``moksha.reconnect_max_delay`` and
``moksha.publish_timeout``.

Queues: a subscription with a ``group`` gets the durable queue
``<amqp_queue_prefix>.<group>`` (subscriptions of several hubs sharing a group
compete for its messages, which wait there while no hub runs); without a
group, or with ``amqp_durable_queues = false``, an exclusive auto-delete queue
(every subscription gets every message, nothing is kept).  The ``durable``
capability describes the default, grouped case.  A durable queue's bindings
follow the code, and :meth:`AMQPBackend.durable_queues` lists Moksha's durable
queues, from a registry kept on the broker
(:mod:`moksha.hub.backends.amqp_bindings`).

Connection: the first connection is retried with backoff, and a lost one is
reconnected by aio-pika's robust connection, which re-declares exchanges,
queues, bindings, prefetch and consumers, each failed attempt logged as one
WARNING line (:mod:`moksha.hub.backends.amqp_connection`); a publish cut off by
the loss is sent again once reconnected.  Publishing goes through
:mod:`moksha.hub.backends.amqp_publisher` (confirms, batched writes).

Deliveries are acked after the handler returns and nacked with requeue when it
raises; by default they are handled one at a time per subscription, in order,
and acked in batches; a subscription made with ``concurrency`` N has N in
flight, each acked on its own (see :mod:`moksha.hub.backends.amqp_subscription`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractRobustChannel, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from pamqp.commands import Basic

from moksha.errors import BackendError, BackendUnavailable
from moksha.hub.backends.amqp_bindings import inventory, remove
from moksha.hub.backends.amqp_connection import (
    CONNECT_TIMEOUT,
    AMQPLink,
    honour_cancellation,
    reason,
)
from moksha.hub.backends.amqp_options import TOPIC_HEADER, broker_address, to_properties
from moksha.hub.backends.amqp_publisher import ConfirmedPublisher
from moksha.hub.backends.amqp_subscription import AMQPSubscription, discard, refused
from moksha.hub.backends.base import Backend, Capabilities, DurableQueue, Handler, Subscription
from moksha.message import Message

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["AMQPBackend"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# A channel can fail a publish a moment before its connection reports the loss;
# pause this long before retrying so that moment is not spent spinning.
_RETRY_PAUSE = 0.05


class AMQPBackend(Backend):
    """Publishes to and consumes from an AMQP 0-9-1 broker (see the module docstring).

    Args:
        config: the hub's configuration; ``amqp_broker`` must be set.

    Raises:
        ConfigError: ``amqp_broker`` cannot be parsed.
    """

    name = "amqp"
    # durable=True describes the default mode (amqp_durable_queues and a group given).
    capabilities = Capabilities(
        acknowledgements=True,
        native_wildcards=True,
        durable=True,
        cross_process=True,
        ordered_publishes=True,  # one confirming channel, one writer (ConfirmedPublisher)
    )

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.address = broker_address(config)
        self._link = AMQPLink(self.address, config, self._on_lost, self._wake_up)
        self._publisher: ConfirmedPublisher | None = None  # on the confirming channel
        self._subscriptions: dict[AMQPSubscription, None] = {}  # ordered set
        self._supervisor: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()  # connected, publish channel open, subscriptions applied
        self._tried = asyncio.Event()  # the first connection attempt has an outcome
        self._wake = asyncio.Event()  # (re)connected: apply what is pending
        self._closed = asyncio.Event()  # close() was called: publishes stop waiting

    @classmethod
    def configured(cls, config: Config) -> bool:
        return config.amqp_broker is not None

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def connect(self) -> None:
        """Start connecting; return once connected or once the first attempt failed.

        A broker that cannot be reached is not an error: the backend keeps
        trying in the background (see :attr:`connected`).

        Raises:
            BackendError: the connection task failed unexpectedly.
        """
        if self._supervisor is None:
            self._tried.clear()
            self._closed.clear()
            self._supervisor = asyncio.create_task(self._supervise(), name="moksha-amqp")
        supervisor = self._supervisor  # close() may drop it meanwhile
        tried = asyncio.create_task(self._tried.wait())
        try:
            await asyncio.wait({tried, supervisor}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            tried.cancel()
            await asyncio.gather(tried, return_exceptions=True)
        if supervisor.done() and not supervisor.cancelled():
            error = supervisor.exception()
            raise BackendError(f"amqp: the connection to {self.address} failed: {error}") from error

    async def close(self) -> None:
        self._ready.clear()
        self._closed.set()
        subscriptions = list(self._subscriptions)
        self._subscriptions.clear()
        for subscription in subscriptions:
            subscription.cancelled = True
            await subscription.stop()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.close()
        await self._link.close()

    async def publish(self, message: Message) -> None:
        """Publish ``message`` and wait for the broker's confirm.

        A publish interrupted by a lost connection is sent again once the
        connection is back, so a message may arrive twice.

        Raises:
            BackendUnavailable: no confirmed publish within ``moksha.publish_timeout``,
                or the backend is closed.
            BackendError: the broker refused the message.
        """
        await self._publish(
            self.config.amqp_exchange, message.topic, message.payload, to_properties(message)
        )

    async def requeue(self, message: Message, group: str) -> bool:
        """Publish ``message`` straight to the group's durable queue (a retry), confirmed.

        Its topic travels in the ``moksha-topic`` header (the routing key is
        the queue's name).  Returns False without durable queues.

        Raises:
            BackendError: not connected, or the broker refused it.
        """
        if not self.config.amqp_durable_queues:
            return False
        queue = f"{self.config.amqp_queue_prefix}.{group}"
        if not self._ready.is_set():
            raise BackendUnavailable(f"amqp: not connected to {self.address}")
        retry = message.with_headers({TOPIC_HEADER: message.topic})
        try:
            await self._publish("", queue, retry.payload, to_properties(retry), again=False)
        except BackendError as exc:
            raise BackendError(
                f"amqp: could not put a retry back on queue {queue!r}: {exc}"
            ) from exc
        return True

    async def _publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        props: Basic.Properties,
        *,
        again: bool = True,
    ) -> None:
        """Publish on the confirming channel; ``again``: resend what a lost connection cut off."""
        try:
            async with asyncio.timeout(self.config.publish_timeout):
                while True:
                    publisher = await self._until_ready()
                    try:
                        await publisher.publish(exchange, routing_key, body, props)
                        return
                    except CONNECTION_EXCEPTIONS as exc:
                        if self._closed.is_set():  # cut off by close()
                            raise BackendUnavailable(
                                f"amqp: the backend for {self.address} closed before the "
                                f"broker confirmed a message on {routing_key!r}"
                            ) from exc
                        if refused(exc):
                            raise BackendError(
                                f"amqp: {self.address} refused a message on {routing_key!r}: "
                                f"{self._reason(exc)}"
                            ) from exc
                        if not again:
                            raise BackendError(self._reason(exc)) from exc
                        self._link.last_error = exc
                        log.debug(
                            "amqp: publish on %s interrupted (%s); retrying", routing_key, exc
                        )
                    await asyncio.sleep(_RETRY_PAUSE)
        except TimeoutError:
            reason = f" ({self._reason(self._link.last_error)})" if self._link.last_error else ""
            raise BackendUnavailable(
                f"amqp: could not publish to {self.address} within "
                f"{self.config.publish_timeout:g}s: not connected{reason}. Check that RabbitMQ "
                "is running and that amqp_broker names it."
            ) from None

    async def _until_ready(self) -> ConfirmedPublisher:
        """The publisher, once connected and set up.

        Raises:
            BackendUnavailable: the backend is closed, or closes meanwhile.
        """
        while not self._ready.is_set() and not self._closed.is_set():
            ready = asyncio.ensure_future(self._ready.wait())
            closed = asyncio.ensure_future(self._closed.wait())
            try:
                await asyncio.wait({ready, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ready.cancel()
                closed.cancel()
        publisher = self._publisher
        if publisher is None or self._closed.is_set():
            raise BackendUnavailable(f"amqp: the backend for {self.address} is closed")
        return publisher

    async def subscribe(
        self,
        patterns: Sequence[str],
        handler: Handler,
        *,
        group: str | None = None,
        concurrency: int = 1,
    ) -> Subscription:
        """Consume the messages matching ``patterns`` (see the module docstring for queues).

        While disconnected the subscription is recorded and set up on connection.

        Raises:
            BackendError: the broker refused the queue or a binding.
        """
        queue = None
        if group is not None and self.config.amqp_durable_queues:
            queue = f"{self.config.amqp_queue_prefix}.{group}"
        subscription = AMQPSubscription(
            patterns,
            handler,
            queue,
            self.config,
            self.declare_exchange,
            self.forget,
            url=str(self.address.url),
            group=group,
            concurrency=concurrency,
        )
        self._subscriptions[subscription] = None
        connection = self._link.connection
        if self._ready.is_set() and connection is not None:
            try:
                await subscription.start(connection)
            except CONNECTION_EXCEPTIONS as exc:
                if refused(exc):
                    self.forget(subscription)
                    raise BackendError(
                        f"amqp: {self.address} refused the subscription to {list(patterns)}: "
                        f"{self._reason(exc)}"
                    ) from exc
                self._wake.set()  # lost meanwhile: applied when connected again
        return subscription

    async def durable_queues(self) -> list[DurableQueue]:
        """The durable queues in Moksha's queue registry (see :mod:`.amqp_bindings`).

        Only this backend's (``<amqp_queue_prefix>.<group>``): the STOMP backend
        may keep its group queues in the same registry.
        """
        prefix = self.config.amqp_queue_prefix
        queues = await self._registry_call(inventory)
        return [q for q in queues if q.name == f"{prefix}.{q.group}"]

    async def delete_durable_queue(self, name: str) -> None:
        """Delete a queue of Moksha's registry, and its dead letters (see :mod:`.amqp_bindings`)."""
        await self._registry_call(remove, name)

    async def _registry_call(self, call: Callable[..., Awaitable[T]], *args: str) -> T:
        try:
            return await call(str(self.address.url), self.config.amqp_queue_prefix, *args)
        except CONNECTION_EXCEPTIONS as exc:
            raise BackendError(f"amqp: {self.address}: {self._reason(exc)}") from exc

    async def declare_exchange(self, channel: AbstractRobustChannel) -> AbstractExchange:
        """The configured exchange on ``channel``, declared unless it is a built-in one."""
        name = self.config.amqp_exchange
        if name.startswith("amq."):
            return await channel.get_exchange(name)  # the broker forbids declaring amq.*
        return await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)

    def forget(self, subscription: AMQPSubscription) -> None:
        """Drop a cancelled subscription so it is not set up again."""
        self._subscriptions.pop(subscription, None)

    async def _supervise(self) -> None:
        connection = await self._link.open(tried=self._tried.set)
        while True:  # until close() cancels it
            await self._bring_up(connection)
            # close() cancelled us, but aiormq may have swallowed it: with wait_for
            # (honour_cancellation), or by turning it into the channel's close reason.
            honour_cancellation()
            if self._closed.is_set():
                return
            self._tried.set()
            await self._wake.wait()
            self._wake.clear()

    async def _bring_up(self, connection: AbstractRobustConnection) -> None:
        """Open the publish channel and set up pending subscriptions, then mark ready."""
        try:
            if self._publisher is None:
                channel = connection.channel(publisher_confirms=True)
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        await channel.initialize()
                        await self.declare_exchange(channel)
                except BaseException:
                    await discard(channel)
                    raise
                self._publisher = ConfirmedPublisher(channel)
            restored = [s for s in self._subscriptions if s.started and not s.cancelled]
            for subscription in list(self._subscriptions):
                if subscription.started or subscription.cancelled:
                    continue
                try:
                    await subscription.start(connection)
                except CONNECTION_EXCEPTIONS as exc:
                    if not refused(exc):
                        raise
                    self.forget(subscription)
                    log.error(
                        "amqp: %s refused the subscription to %s: %s",
                        self.address,
                        list(subscription.patterns),
                        self._reason(exc),
                    )
        except CONNECTION_EXCEPTIONS as exc:
            # Lost again, or the exchange refused: the next reconnection tries again.
            self._link.last_error = exc
            log.warning(
                "amqp: could not set up exchange %r and queues on %s (%s)",
                self.config.amqp_exchange,
                self.address,
                self._reason(exc),
            )
            return
        self._ready.set()
        for subscription in restored:  # reconnected: their bindings may have moved meanwhile
            await subscription.refresh()

    def _on_lost(self) -> bool:
        """The connection was lost: not ready until reconnected; returns whether it was."""
        was_ready = self._ready.is_set()
        self._ready.clear()
        return was_ready

    def _wake_up(self) -> None:
        self._wake.set()  # reconnected: _supervise brings the channels and queues up again

    def _reason(self, exc: BaseException) -> str:
        return reason(self.address, exc)
