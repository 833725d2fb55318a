"""The STOMP 1.2 backend: RabbitMQ's STOMP plugin (or any STOMP 1.2 broker) over asyncio.

The parts, one concept per module:

- :mod:`~moksha.hub.backends.stomp_protocol`: frames and the client state
  machine, sans I/O;
- :mod:`~moksha.hub.backends.stomp_connection`: one connection (bytes,
  heart-beats, receipts);
- :mod:`~moksha.hub.backends.stomp_subscription`: deliveries to one handler
  (queue, order, ACK/NACK);
- :mod:`~moksha.hub.backends.stomp_outbox`: published messages kept until
  confirmed;
- :mod:`~moksha.hub.backends.stomp_options`: the options and the wire format;
- :mod:`~moksha.hub.backends.stomp_reconnect`: the brokers tried in turn, with
  backoff, whenever the connection is lost;
- this module: :class:`StompBackend`, which reconnects and ties them together.

Connection
    ``connect()`` starts a background task that connects and, whenever the
    connection is lost, reconnects: to the brokers of ``stomp_uri`` in turn,
    logging one WARNING per failed attempt and backing off from
    ``reconnect_delay`` to ``reconnect_max_delay`` after each round.  A broker
    that stays silent for twice the negotiated heart-beat interval is taken
    for dead.  After reconnecting, every subscription is made again, then
    every unconfirmed message is sent again.

Subscribing
    one SUBSCRIBE per pattern, to ``stomp_destination_prefix + pattern``,
    confirmed by a receipt before ``subscribe`` returns (while disconnected it
    returns at once and the subscription is made on connection).  With a
    ``group``, all patterns feed one durable queue named ``moksha.stomp.<group>``
    (RabbitMQ ``x-queue-name``), shared by every hub in the group and kept
    while they are down; without one, each pattern gets the broker's
    auto-delete queue, which disappears with the connection.  Deliveries are
    filtered again with :class:`~moksha.topics.TopicRouter`, so patterns keep
    the AMQP rules on any broker.  A group queue's bindings follow the code
    through RabbitMQ's AMQP side when ``stomp_amqp_url`` is set
    (:mod:`moksha.hub.backends.stomp_bindings`); a message matching none of
    the patterns is dead-lettered, never handled.  With ``stomp_ack_mode =
    client-individual`` a message is ACKed once its handler returned and
    NACKed (requeued) when it raised; with ``auto`` the broker counts it
    delivered as soon as it sent it, and this backend's
    ``capabilities.acknowledgements`` is False.

Publishing
    SEND to ``stomp_destination_prefix + topic``.  In blocking mode
    (``moksha.blocking_mode``, the default) ``publish`` returns once the broker
    confirmed the message with a receipt (one round trip, shared by concurrent
    publishers); otherwise once the frame is written, receipts being asked for
    in windows.  Either way the backend keeps each message until confirmed and
    sends it again after a reconnection, so a consumer may see it twice: at
    most the messages unconfirmed when the connection was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from moksha.errors import BackendError, BackendUnavailable
from moksha.hub.backends.base import Backend, Capabilities, DurableQueue, Handler, Subscription
from moksha.hub.backends.stomp_bindings import StompQueues
from moksha.hub.backends.stomp_connection import ConnectionLost, StompConnection
from moksha.hub.backends.stomp_options import (
    TOPIC_HEADER,
    StompOptions,
    destination,
    send_headers,
)
from moksha.hub.backends.stomp_outbox import Outbox, Outgoing
from moksha.hub.backends.stomp_protocol import Frame, StompServerError
from moksha.hub.backends.stomp_reconnect import FIELDS, reconnect_forever
from moksha.hub.backends.stomp_subscription import GROUP_QUEUE_PREFIX, StompSubscription
from moksha.message import Message

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["StompBackend"]

log = logging.getLogger(__name__)


class StompBackend(Backend):
    """Publish and subscribe through a STOMP 1.2 broker (see the module docstring).

    Args:
        config: read for the ``stomp_*`` keys, ``reconnect_delay``,
            ``reconnect_max_delay``, ``publish_timeout``, ``shutdown_timeout``
            and ``consumer_backlog`` (the bound of each subscription's queue).

    Raises:
        ConfigError: a broker address or TLS file is wrong.
    """

    name = "stomp"
    capabilities = Capabilities(
        acknowledgements=True,
        native_wildcards=True,
        durable=True,
        cross_process=True,
        ordered_publishes=True,  # SEND is written before the receipt is awaited
    )

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.options = StompOptions.from_config(config)
        # With ack mode "auto" there is nothing to acknowledge: say so per instance.
        self.capabilities = replace(
            StompBackend.capabilities, acknowledgements=self.options.client_acks
        )
        self._connection: StompConnection | None = None
        self._ready = asyncio.Event()  # set while _connection is subscribed and usable
        self._attempted = asyncio.Event()  # set once the first round of attempts ended
        self._lock = asyncio.Lock()  # one (re)subscription at a time
        self._subscriptions: list[StompSubscription] = []
        self._routes: dict[str, StompSubscription] = {}  # STOMP subscription id -> ours
        self._ids = itertools.count(1)
        self._outbox = Outbox()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        # Group queues follow the code through RabbitMQ's AMQP side, when configured.
        self._queues = StompQueues(config) if config.stomp_amqp_url else None

    @classmethod
    def configured(cls, config: Config) -> bool:
        """Whether ``stomp_uri`` or ``stomp_broker`` is set."""
        return bool(config.stomp_uri or config.stomp_broker)

    @property
    def connected(self) -> bool:
        """Whether a broker connection is up and every subscription made on it."""
        return self._ready.is_set()

    def _brokers(self) -> str:
        return ", ".join(map(str, self.options.brokers))

    # -- connection ---------------------------------------------------------

    async def connect(self) -> None:
        """Start connecting; return once connected or once every broker failed once.

        Never raises for an unreachable broker: a background task keeps trying
        (see the module docstring) until :meth:`close`.
        """
        if self._supervisor is not None:
            return
        if self._queues is not None:
            await self._queues.open()
        self._closing = False
        self._attempted.clear()
        self._supervisor = asyncio.create_task(self._supervise(), name="moksha stomp connection")
        await self._attempted.wait()

    async def _supervise(self) -> None:
        try:
            await reconnect_forever(
                self.options,
                self.config,
                self._on_message,
                self._serve,
                attempted=self._attempted,
                closing=lambda: self._closing,
            )
        except Exception:
            log.exception("stomp: the connection task failed; no more reconnections")
            raise
        finally:
            self._attempted.set()  # never leave connect() waiting

    async def _serve(self, connection: StompConnection) -> BaseException:
        """Subscribe on a new connection, publish what awaits confirmation, run until lost."""
        try:
            async with self._lock:
                self._connection = connection
                self._routes.clear()
                receipts = [r for sub in self._subscriptions for r in self._apply(connection, sub)]
                await self._confirm(connection, receipts)
                self._outbox.resend(connection)
                self._ready.set()
            self._attempted.set()
            log.info("stomp: connected to %s", connection.broker, extra=FIELDS)
            return await connection.lost
        except (ConnectionLost, StompServerError) as exc:
            return exc
        finally:
            self._ready.clear()
            self._connection = None
            self._outbox.progress.set()  # wake publishers waiting for its receipts
            await connection.close()

    async def close(self) -> None:
        """Disconnect (waiting up to ``shutdown_timeout`` for the broker's receipt) and stop.

        Messages the broker did not confirm by then are logged as possibly lost.
        """
        self._closing = True
        connection = self._connection
        if connection is not None and self._ready.is_set():
            try:
                await connection.disconnect(self.config.shutdown_timeout)
            except (ConnectionLost, StompServerError, TimeoutError) as exc:
                log.warning("stomp: no clean disconnect from %s (%s)", connection.broker, exc)
            else:
                self._outbox.confirm_all()  # the DISCONNECT receipt covers every SEND before it
        self._ready.clear()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        for sub in list(self._subscriptions):
            await sub.stop()
        self._subscriptions.clear()
        self._routes.clear()
        if self._queues is not None:
            await self._queues.close()
        lost = self._outbox.abandon(
            BackendUnavailable(f"stomp: closed before {self._brokers()} confirmed the message")
        )
        if lost:
            log.warning(
                "stomp: %d published message(s) were not confirmed by %s before closing "
                "and may be lost",
                lost,
                self._brokers(),
            )

    async def _confirm(
        self, connection: StompConnection, receipts: list[asyncio.Future[None]]
    ) -> None:
        """Wait for receipts; a broker that does not answer in time is taken for dead."""
        try:
            async with asyncio.timeout(self.config.publish_timeout):
                results = await asyncio.gather(*receipts, return_exceptions=True)
        except TimeoutError:
            why = f"no receipt within publish_timeout={self.config.publish_timeout}s"
            connection.fail(TimeoutError(why))
            raise ConnectionLost(why) from None
        for result in results:
            if isinstance(result, BaseException):
                raise result

    # -- publishing -------------------------------------------------------

    async def publish(self, message: Message) -> None:
        """Send ``message`` to ``stomp_destination_prefix + message.topic``.

        In blocking mode, return once the broker confirmed it; otherwise once
        it is written.  It is sent again after a reconnection until confirmed,
        so it may arrive twice.

        Raises:
            MessageError: a header has a reserved name or cannot be encoded.
            BackendUnavailable: no broker connection, or no confirmation, within
                ``publish_timeout`` (the message may still arrive later).
            BackendError: the broker never confirmed it, over several connections.
        """
        await self._send(message, destination(self.options.prefix, message.topic), confirm=None)

    async def requeue(self, message: Message, group: str) -> bool:
        """Send ``message`` straight to the group's durable queue (a retry), confirmed.

        On RabbitMQ the destination ``/amq/queue/<name>`` reaches that queue
        alone; the topic travels in the ``moksha-topic`` header.  Returns False
        with ``auto`` acks (nothing is redelivered then).

        Raises:
            BackendUnavailable, BackendError: as :meth:`publish`.
        """
        if not self.options.client_acks:
            return False
        retry = message.with_headers({TOPIC_HEADER: message.topic})
        await self._send(retry, f"/amq/queue/{GROUP_QUEUE_PREFIX}{group}", confirm=True)
        return True

    async def _send(self, message: Message, to: str, *, confirm: bool | None) -> None:
        """SEND ``message`` to ``to``; wait for its receipt if ``confirm`` (None: blocking_mode)."""
        loop = asyncio.get_running_loop()
        if confirm is None:
            confirm = self.config.blocking_mode
        out = Outgoing(
            to,
            message.payload,
            send_headers(message, persistent=self.options.persistent),
            loop.create_future() if confirm else None,
        )
        deadline = loop.time() + self.config.publish_timeout
        while True:  # each turn waits for a new connection or a receipt, until the deadline
            connection = self._connection  # the usual case first: no coroutine to await
            if connection is None or not self._ready.is_set() or self._closing:
                connection = await self._usable_connection(message.topic, deadline)
            if self._outbox.full and not connection.paused:
                await self._wait_for(self._outbox.progress, message.topic, deadline)
                continue
            try:
                self._outbox.transmit(connection, out)
            except ConnectionLost:
                if connection is self._connection:
                    self._ready.clear()  # before the supervisor notices: do not spin on it
                continue
            break
        if out.confirmed is None:
            await connection.drain()
            return
        try:
            # No shield: the outbox settles only futures not done, so a publisher
            # that stops waiting (timeout, cancellation) leaves it consistent.
            async with asyncio.timeout_at(deadline):
                await out.confirmed
        except TimeoutError:
            raise BackendUnavailable(
                f"cannot publish on {message.topic!r}: the STOMP broker at {self._brokers()} did "
                f"not confirm it within publish_timeout={self.config.publish_timeout}s (it is "
                "kept and sent again on reconnection, so it may still arrive)"
            ) from None

    async def _usable_connection(self, topic: str, deadline: float) -> StompConnection:
        if self._supervisor is None or self._closing:
            raise BackendUnavailable(
                f"cannot publish on {topic!r}: the STOMP backend is not connected "
                "(connect() was not called, or close() was)"
            )
        while True:  # until the deadline
            connection = self._connection
            if self._ready.is_set() and connection is not None:
                return connection
            await self._wait_for(self._ready, topic, deadline)

    async def _wait_for(self, event: asyncio.Event, topic: str, deadline: float) -> None:
        if event is self._outbox.progress:
            event.clear()
        try:
            async with asyncio.timeout_at(deadline):
                await event.wait()
        except TimeoutError:
            raise BackendUnavailable(
                f"cannot publish on {topic!r}: no working connection to the STOMP broker at "
                f"{self._brokers()} within publish_timeout={self.config.publish_timeout}s; "
                "check that it runs and that stomp_uri, stomp_user and stomp_pass are right"
            ) from None

    # -- subscribing ------------------------------------------------------

    async def subscribe(
        self,
        patterns: Sequence[str],
        handler: Handler,
        *,
        group: str | None = None,
        concurrency: int = 1,
    ) -> Subscription:
        """Deliver messages whose topic matches one of ``patterns`` to ``handler``.

        Returns once the broker confirmed every SUBSCRIBE, or at once while
        disconnected (the subscription is then made on connection).

        Raises:
            BackendError: the broker refused the subscription (an ERROR frame).
        """
        applied = None
        if group is not None and self._queues is not None:
            applied = await self._queues.follow(group, patterns)  # before SUBSCRIBE binds
        sub = StompSubscription(
            tuple(patterns),
            handler,
            group,
            options=self.options,
            backlog=self.config.consumer_backlog,
            concurrency=concurrency,
            current=lambda: self._connection,
            cancel=self._cancel,
        )
        if applied is not None:
            sub.marker = applied.marker
            for pattern in applied.others:
                sub.others.add(pattern, True)
        self._subscriptions.append(sub)
        refused: StompServerError | None = None
        async with self._lock:
            connection = self._connection
            if self._ready.is_set() and connection is not None and sub.connection is not connection:
                try:
                    await self._confirm(connection, self._apply(connection, sub))
                except ConnectionLost:
                    pass  # made again on reconnection
                except StompServerError as exc:
                    refused, broker = exc, connection.broker
        if refused is not None:
            await self._cancel(sub)
            destinations = ", ".join(destination(self.options.prefix, p) for p in sub.patterns)
            details = f" ({refused.details})" if refused.details else ""
            raise BackendError(
                f"stomp: the broker at {broker} refused the subscription to {destinations}: "
                f"{refused.message}{details}"
            ) from refused
        return sub

    async def durable_queues(self) -> list[DurableQueue]:
        """The group queues, through ``stomp_amqp_url`` (STOMP itself cannot list queues).

        Raises:
            BackendError: ``stomp_amqp_url`` is not set (saying where to look
                instead), or cannot be reached.
        """
        if self._queues is not None:
            return await self._queues.durable_queues()
        raise BackendError(
            "stomp: STOMP cannot list a broker's queues or bindings; on RabbitMQ, the "
            f"durable queues of consumer groups are named {GROUP_QUEUE_PREFIX}<group> "
            "(rabbitmqctl list_queues name messages consumers), or set stomp_amqp_url"
        )

    async def delete_durable_queue(self, name: str) -> None:
        """Delete a group queue, through ``stomp_amqp_url`` (see :meth:`durable_queues`).

        Raises:
            BackendError: ``stomp_amqp_url`` is not set, the queue is not a group
                queue of Moksha's registry, or a hub consumes from it.
        """
        if self._queues is not None:
            await self._queues.delete(name)
            return
        raise BackendError(
            f"stomp: STOMP cannot delete queue {name!r}; use rabbitmqctl delete_queue"
        )

    def _apply(
        self, connection: StompConnection, sub: StompSubscription
    ) -> list[asyncio.Future[None]]:
        """Send the SUBSCRIBE frames of ``sub``; return their receipts."""
        headers = sub.headers()
        receipts = []
        sub.pattern_index.clear()
        for index, pattern in enumerate(sub.patterns):
            sid = str(next(self._ids))
            self._routes[sid] = sub
            sub.pattern_index[sid] = index
            receipts.append(
                connection.subscribe(
                    destination(self.options.prefix, pattern), sid, self.options.ack_mode, headers
                )
            )
        sub.connection = connection
        return receipts

    async def _on_message(self, connection: StompConnection, frame: Frame) -> None:
        """Called by the connection's reader for each MESSAGE frame."""
        sub = self._routes.get(frame.headers.get("subscription", ""))
        if sub is None or sub.cancelled:
            if self.options.client_acks:
                connection.nack(frame)  # give it back to the queue's other consumers
            return
        await sub.deliver(connection, frame)

    async def _cancel(self, sub: StompSubscription) -> None:
        if sub.cancelled:
            return
        sub.cancelled = True
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)
        async with self._lock:
            ids = [sid for sid, routed in self._routes.items() if routed is sub]
            connection = self._connection
            if connection is not None and sub.connection is connection:
                with contextlib.suppress(ConnectionLost, StompServerError):
                    await self._confirm(connection, [connection.unsubscribe(sid) for sid in ids])
            for sid in ids:
                del self._routes[sid]
        await sub.stop()
        if self._queues is not None and sub.group is not None and sub.marker is not None:
            await self._queues.leave(sub.group, sub.marker)
