"""NATS backend (nats-py): core NATS for fan-out, JetStream for durable consumer groups.

Selected by ``nats_url = nats://host:4222`` (several servers separated by
commas; ``tls://`` for TLS; ``user:password@`` in the URL).  Options:
``nats_stream``, ``nats_stream_subjects``, ``nats_stream_max_age``,
``nats_max_deliver``, ``nats_ack_wait``, ``nats_inflight``,
``moksha.reconnect_delay``.

How the contract maps onto NATS (:mod:`~moksha.hub.backends.nats_wire` has
the subject and payload mapping):

- Subscriptions without a group (callbacks, the live socket) are core NATS
  subscriptions, one per subject.  Overlapping subjects bring one copy per
  subscription; a copy is handed on only through the lowest-numbered
  subscription that matches, then routed by
  :class:`~moksha.topics.TopicRouter` (each handler gets it once, with
  AMQP's pattern meaning).
- With ``nats_stream_subjects`` set, publishes to those subjects are
  JetStream publishes (awaited until stored) and consumer groups are durable
  JetStream consumers with explicit acks
  (:mod:`~moksha.hub.backends.nats_jetstream`).
- Without it (the default), groups are core NATS queue groups: hubs of one
  group share its messages, but nothing is kept while no hub runs and
  nothing is redelivered (the backend then declares no acknowledgements).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.errors import MaxPayloadError
from nats.js import JetStreamContext

from moksha.errors import BackendError, BackendUnavailable, ConfigError, MessageError
from moksha.hub.backends.base import (
    Backend,
    Capabilities,
    DurableQueue,
    FanOutSubscription,
    Handler,
    Subscription,
    deliver,
)
from moksha.hub.backends.nats_jetstream import (
    DURABLE_PREFIX,
    RETRY_SUFFIX,
    JetStreamGroup,
    ensure_stream,
    list_groups,
    retry_subject,
)
from moksha.hub.backends.nats_wire import cover, decode, encode, in_subjects, subjects, within
from moksha.message import Message
from moksha.topics import TopicRouter, matches

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["NATSBackend"]

log = logging.getLogger("moksha.hub.backends.nats")

CONNECT_TIMEOUT = 5.0
# Replies, JetStream's API and acks, and groups' retries: what ">" also matches, but no
# topic anyone published (a bridge subscribed to "#" must not forward them).
_INTERNAL = ("_INBOX.", "$", "_moksha_retry.")


class _QueueGroup(Subscription):
    """A core NATS queue group: shared work, nothing kept, no acknowledgements."""

    def __init__(self, patterns: Sequence[str], handler: Handler) -> None:
        self.patterns = tuple(patterns)
        self._handler = handler
        self.subscription: NatsSubscription | None = None

    async def arrived(self, msg: Msg) -> None:
        message = decode(msg.subject, msg.data, msg.headers)
        if any(matches(p, message.topic) for p in self.patterns):
            try:
                await deliver(self._handler, message)
            except Exception:
                log.exception("consumer group handler failed on %s", message.topic)

    async def cancel(self) -> None:
        subscription, self.subscription = self.subscription, None
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()


class NATSBackend(Backend):
    """Publishes and subscribes on NATS (see the module docstring)."""

    name = "nats"
    capabilities = Capabilities(
        acknowledgements=True, durable=True, cross_process=True, ordered_publishes=True
    )

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        if config.nats_url is None:
            raise ConfigError("the nats backend needs nats_url", key="nats_url")
        self.servers = [url.strip() for url in config.nats_url.split(",") if url.strip()]
        self.jetstream = bool(config.nats_stream_subjects)
        if not self.jetstream:
            self.capabilities = Capabilities(cross_process=True, ordered_publishes=True)
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._router: TopicRouter[Handler] = TopicRouter()
        self._subs: dict[str, NatsSubscription] = {}  # subject -> its core subscription
        self._users: dict[str, int] = {}
        self._incoming: asyncio.Queue[Msg] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None
        self._groups: list[Subscription] = []

    @classmethod
    def configured(cls, config: Config) -> bool:
        return config.nats_url is not None

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def max_payload(self) -> int | None:
        """The largest message (payload and headers) the server accepts, in bytes."""
        return self._nc.max_payload if self._nc is not None else None

    async def _open(self) -> NATS:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                return await nats.connect(
                    self.servers,
                    name="moksha",
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=self.config.reconnect_delay,
                    connect_timeout=2,
                    error_cb=self._error,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            where = ", ".join(s.rsplit("@", 1)[-1] for s in self.servers)
            raise BackendUnavailable(
                f"cannot reach the NATS server at {where} ({type(exc).__name__}); check that it "
                "is running and that nats_url names it"
            ) from None

    async def _error(self, exc: Exception) -> None:
        log.debug("NATS: %s", exc)

    async def _disconnected(self) -> None:
        if self._nc is not None:  # not our own close
            log.warning("NATS connection lost; reconnecting")

    async def _reconnected(self) -> None:
        log.info("NATS reconnected")

    async def connect(self) -> None:
        self._nc = await self._open()
        if self.jetstream:
            self._js = self._nc.jetstream()
            try:
                await ensure_stream(self._js, self.config)
            except BaseException:
                await self._nc.close()
                raise
        self._dispatcher = asyncio.create_task(self._dispatch(), name="nats fan-out")

    async def close(self) -> None:
        groups, self._groups = self._groups, []
        for group in groups:
            await group.cancel()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.drain()
            await nc.close()
        self._subs.clear()
        self._users.clear()

    def _connection(self) -> NATS:
        if self._nc is None:
            raise BackendError("the nats backend is not connected")
        return self._nc

    async def publish(self, message: Message) -> None:
        nc = self._connection()
        subject, payload, headers = encode(message)
        try:
            if self._js is not None and in_subjects(subject, self.config.nats_stream_subjects):
                await self._js.publish(subject, payload, headers=headers)
            else:
                await nc.publish(subject, payload, headers=headers)
        except MaxPayloadError:
            raise MessageError(
                f"message {message.id} ({len(payload)} bytes and its headers) is larger than the "
                f"NATS server's max_payload ({nc.max_payload} bytes); raise max_payload in the "
                "server's configuration, or send less"
            ) from None
        except nats.errors.Error as exc:
            raise BackendError(f"NATS publish to {subject} failed: {exc}") from exc

    async def requeue(self, message: Message, group: str) -> bool:
        if self._js is None:
            return False
        subject, payload, headers = encode(message, retry_subject(self.config.nats_stream, group))
        try:
            await self._js.publish(subject, payload, headers=headers)
        except nats.errors.Error as exc:
            raise BackendError(f"NATS: cannot put a retry back for {group}: {exc}") from exc
        return True

    async def subscribe(
        self,
        patterns: Sequence[str],
        handler: Handler,
        *,
        group: str | None = None,
        concurrency: int = 1,
    ) -> Subscription:
        nc = self._connection()
        if group is not None and self._js is not None:
            spaces = self.config.nats_stream_subjects
            outside = [p for p in patterns if not all(within(s, spaces) for s in subjects(p))]
            if outside:
                raise BackendError(
                    f"consumer group {group}: patterns {outside} reach beyond nats_stream_subjects "
                    f"{list(spaces)}; add their subjects there so JetStream keeps them"
                )
            durable = JetStreamGroup(
                nc, self._js, self.config, patterns, handler, group, concurrency
            )
            await durable.start()
            self._groups.append(durable)
            return durable
        if group is not None:
            shared = _QueueGroup(patterns, handler)
            shared.subscription = await nc.subscribe(
                cover(patterns) or ">", queue=group, cb=shared.arrived
            )
            self._groups.append(shared)
            return shared
        for pattern in patterns:
            self._router.add(pattern, handler)
            for name in subjects(pattern):
                self._users[name] = self._users.get(name, 0) + 1
                if name not in self._subs:
                    self._subs[name] = await nc.subscribe(name, cb=self._arrived)
        await nc.flush()  # subscribed before the first publish that follows
        return FanOutSubscription(patterns, handler, self._drop)

    async def _drop(self, patterns: Sequence[str], handler: Handler) -> None:
        for pattern in patterns:
            self._router.remove(pattern, handler)
            for name in subjects(pattern):
                users = self._users.get(name, 0) - 1
                if users > 0:
                    self._users[name] = users
                    continue
                self._users.pop(name, None)
                subscription = self._subs.pop(name, None)
                if subscription is not None:
                    with contextlib.suppress(Exception):
                        await subscription.unsubscribe()

    async def _arrived(self, msg: Msg) -> None:
        self._incoming.put_nowait(msg)

    def _first(self, subject: str) -> int | None:
        """The lowest subscription id among our subjects matching ``subject``."""
        found = [s._id for name, s in self._subs.items() if in_subjects(subject, [name])]
        return min(found) if found else None

    async def _dispatch(self) -> None:
        """Hand each fan-out message to its handlers, in arrival order, once."""
        while True:
            msg = await self._incoming.get()
            if msg.sid != self._first(msg.subject) or msg.subject.startswith(_INTERNAL):
                continue  # the same message through another of our subjects, or plumbing
            message = decode(msg.subject, msg.data, msg.headers)
            for handler in self._router.match(message.topic):
                try:
                    await deliver(handler, message)
                except Exception:
                    log.exception("subscriber %r failed on %s", handler, message.topic)

    async def durable_queues(self) -> list[DurableQueue]:
        if not self.config.nats_stream_subjects:
            return []
        async with self._jetstream() as js:
            try:
                return await list_groups(js, self.config.nats_stream)
            except nats.js.errors.NotFoundError:
                return []

    async def delete_durable_queue(self, name: str) -> None:
        async with self._jetstream() as js:
            groups = {g.name: g for g in await list_groups(js, self.config.nats_stream)}
            if not name.startswith(DURABLE_PREFIX) or name not in groups:
                raise BackendError(f"nats: {name!r} is not a consumer Moksha keeps")
            if groups[name].consumers:
                raise BackendError(f"nats: a hub is consuming from {name!r}; stop it first")
            await js.delete_consumer(self.config.nats_stream, name)
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_consumer(self.config.nats_stream, name + RETRY_SUFFIX)

    @contextlib.asynccontextmanager
    async def _jetstream(self) -> Any:
        if self._js is not None:
            yield self._js
            return
        nc = await self._open()
        try:
            yield nc.jetstream()
        finally:
            await nc.close()
