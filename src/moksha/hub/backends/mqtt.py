"""MQTT 5 backend (paho-mqtt 2): devices' bus, same contract as every other backend.

Selected by ``mqtt_url = mqtt://user:password@host:1883`` (``mqtts://`` for
TLS).  Options: ``mqtt_node``, ``mqtt_session_expiry``, ``mqtt_inflight``,
``moksha.reconnect_delay`` / ``moksha.reconnect_max_delay``.

How the contract maps onto MQTT (:mod:`~moksha.hub.backends.mqtt_wire` has
the topic and payload mapping):

- Everything is QoS 1, and every delivery is acknowledged only after the
  handler returned (paho's manual acks): at-least-once, with MQTT 5's Receive
  Maximum (``mqtt_inflight``) bounding what the broker sends ahead.
- Subscriptions without a group (callbacks, the live socket) share one clean
  connection.  Overlapping filters bring one copy per filter (Mosquitto does
  so); each filter has a subscription id and a copy is handed on only through
  the lowest-numbered filter that matches, then routed by
  :class:`~moksha.topics.TopicRouter`, so each handler gets it once, with
  AMQP's pattern meaning.
- A consumer group is a persistent session (client id
  ``moksha:<group>:<mqtt_node>``, clean start off, ``mqtt_session_expiry``)
  holding one shared subscription ``$share/<group>/<filter>`` whose filter
  covers all of the group's patterns (two filters could give one message to
  two hubs).  Messages published while no hub of the group runs wait in the
  session; hubs of one group with different ``mqtt_node`` share the work.
- A retry goes back to its group alone on ``moksha-retry/<group>`` (the
  original topic in a user property), so its attempt count survives.
- MQTT has no negative acknowledgement: a delivery whose handler raised is
  left unacknowledged and comes again only when the session reconnects
  (the hub's own retries do not need this).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

import paho.mqtt.client as paho

from moksha.errors import ConfigError
from moksha.hub.backends.base import (
    Backend,
    Capabilities,
    DurableQueue,
    FanOutSubscription,
    Handler,
    Subscription,
    deliver,
)
from moksha.hub.backends.mqtt_client import MQTTConnection
from moksha.hub.backends.mqtt_groups import GroupRegistry
from moksha.hub.backends.mqtt_wire import (
    RETRY_PREFIX,
    MQTTOptions,
    cover,
    decode,
    encode,
    internal,
    mqtt_filter,
)
from moksha.message import Message
from moksha.topics import TopicRouter

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["MQTTBackend"]

log = logging.getLogger("moksha.hub.backends.mqtt")

_PATTERNS_SID = 1
_RETRY_SID = 2


def _sids(message: paho.MQTTMessage) -> list[int]:
    found = getattr(message.properties, "SubscriptionIdentifier", None)
    return list(found) if found else []


class _GroupSubscription(Subscription):
    """A consumer group's persistent session and its delivery workers."""

    def __init__(
        self,
        backend: MQTTBackend,
        patterns: Sequence[str],
        handler: Handler,
        group: str,
        concurrency: int,
    ) -> None:
        config = backend.config
        self.patterns = tuple(patterns)
        self.group = group
        self.filter = cover(self.patterns)
        self.retry_topic = f"{RETRY_PREFIX}/{group}"
        self._handler = handler
        self._concurrency = max(1, concurrency)
        self._queue: asyncio.Queue[paho.MQTTMessage] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._ours: TopicRouter[bool] = TopicRouter()  # caches each topic's answer
        for pattern in self.patterns:
            self._ours.add(pattern, True)
        client_id = f"moksha:{group}:{backend.node}"
        self._goodbye = backend.registry.will(client_id, group, self.patterns, self.filter)
        self.connection = MQTTConnection(
            backend.options,
            client_id,
            persistent=True,
            session_expiry=config.mqtt_session_expiry,
            receive_maximum=max(self._concurrency, config.mqtt_inflight),
            on_message=self._queue.put_nowait,
            reconnect_delay=(config.reconnect_delay, config.reconnect_max_delay),
            will=self._goodbye,
        )

    async def start(self, registry: GroupRegistry) -> None:
        await self.connection.open()
        try:
            stale = await registry.record(self.connection, self.group, self.patterns, self.filter)
            for old in stale:  # what an earlier release of the group subscribed
                await self.connection.unsubscribe(f"$share/{self.group}/{old}")
            await self.connection.subscribe(f"$share/{self.group}/{self.filter}", _PATTERNS_SID)
            await self.connection.subscribe(f"$share/{self.group}/{self.retry_topic}", _RETRY_SID)
        except BaseException:
            await self.connection.close()
            raise
        self._workers = [
            asyncio.create_task(self._work(), name=f"mqtt {self.group} #{n}")
            for n in range(self._concurrency)
        ]

    async def _work(self) -> None:
        while True:
            raw = await self._queue.get()
            if not self._wanted(raw):
                self.connection.ack(raw)  # outside our patterns: the broader filter's extra
                continue
            message = decode(raw.topic, raw.payload, raw.properties)
            if raw.topic != self.retry_topic and not self._ours.match(message.topic):
                self.connection.ack(raw)
                continue
            try:
                await deliver(self._handler, message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning(
                    "MQTT delivery of %s to %s failed; it comes again when the session reconnects",
                    message.id,
                    self.group,
                    exc_info=True,
                )
                continue
            self.connection.ack(raw)

    def _wanted(self, raw: paho.MQTTMessage) -> bool:
        sids = _sids(raw)
        if raw.topic == self.retry_topic:
            return _RETRY_SID in sids
        return _PATTERNS_SID in sids and not internal(raw.topic)

    async def cancel(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.cancel()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if self.connection.connected:  # the record says no hub is connected any more
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self.connection.publish_nowait(*self._goodbye, retain=True)
        await self.connection.close()  # unacknowledged deliveries stay in the session


class MQTTBackend(Backend):
    """Publishes and subscribes on an MQTT 5 broker (see the module docstring)."""

    name = "mqtt"
    capabilities = Capabilities(
        acknowledgements=True,
        durable=True,
        cross_process=True,
        ordered_publishes=True,
    )

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        if config.mqtt_url is None:
            raise ConfigError("the mqtt backend needs mqtt_url", key="mqtt_url")
        self.options = MQTTOptions.parse(config.mqtt_url)
        self.node = config.mqtt_node or socket.gethostname()
        self.registry = GroupRegistry(self.options)
        self._main: MQTTConnection | None = None
        self._router: TopicRouter[Handler] = TopicRouter()
        self._filters: dict[str, tuple[int, int]] = {}  # filter -> (subscription id, users)
        self._next_sid = 0
        self._incoming: asyncio.Queue[paho.MQTTMessage] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None
        self._groups: list[_GroupSubscription] = []

    @classmethod
    def configured(cls, config: Config) -> bool:
        return config.mqtt_url is not None

    @property
    def connected(self) -> bool:
        return self._main is not None and self._main.connected

    async def connect(self) -> None:
        self._main = MQTTConnection(
            self.options,
            f"moksha:{self.node}:{uuid.uuid4().hex[:12]}",
            persistent=False,
            session_expiry=0,
            receive_maximum=self.config.mqtt_inflight,
            on_message=self._incoming.put_nowait,
            reconnect_delay=(self.config.reconnect_delay, self.config.reconnect_max_delay),
        )
        await self._main.open()
        self._dispatcher = asyncio.create_task(self._dispatch(), name="mqtt fan-out")

    async def close(self) -> None:
        groups, self._groups = self._groups, []
        for group in groups:
            await group.cancel()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None
        if self._main is not None:
            await self._main.close()
            self._main = None

    def _connection(self) -> MQTTConnection:
        if self._main is None:
            raise ConfigError("the mqtt backend is not connected", key="mqtt_url")
        return self._main

    async def publish(self, message: Message) -> None:
        await self.offer(message)

    def offer(self, message: Message) -> Awaitable[None]:
        return self._connection().publish_nowait(*encode(message))

    async def requeue(self, message: Message, group: str) -> bool:
        await self._connection().publish_nowait(*encode(message, f"{RETRY_PREFIX}/{group}"))
        return True

    async def subscribe(
        self,
        patterns: Sequence[str],
        handler: Handler,
        *,
        group: str | None = None,
        concurrency: int = 1,
    ) -> Subscription:
        if group is not None:
            subscription = _GroupSubscription(self, patterns, handler, group, concurrency)
            await subscription.start(self.registry)
            self._groups.append(subscription)
            return subscription
        connection = self._connection()
        for pattern in patterns:
            self._router.add(pattern, handler)
            wanted = mqtt_filter(pattern)
            if wanted in self._filters:
                sid, users = self._filters[wanted]
                self._filters[wanted] = (sid, users + 1)
                continue
            self._next_sid += 1
            self._filters[wanted] = (self._next_sid, 1)
            await connection.subscribe(wanted, self._next_sid)
        return FanOutSubscription(patterns, handler, self._drop)

    async def _drop(self, patterns: Sequence[str], handler: Handler) -> None:
        for pattern in patterns:
            self._router.remove(pattern, handler)
            wanted = mqtt_filter(pattern)
            sid, users = self._filters.get(wanted, (0, 0))
            if users > 1:
                self._filters[wanted] = (sid, users - 1)
            elif users == 1:
                del self._filters[wanted]
                if self._main is not None:
                    await self._main.unsubscribe(wanted)

    def _first_filter(self, topic: str) -> int | None:
        """The lowest subscription id among our filters matching ``topic``."""
        found = [sid for f, (sid, _) in self._filters.items() if paho.topic_matches_sub(f, topic)]
        return min(found) if found else None

    async def _dispatch(self) -> None:
        """Hand each fan-out message to its handlers, in arrival order."""
        while True:
            raw = await self._incoming.get()
            connection = self._main
            sids = _sids(raw)
            # One copy per matching filter arrives: pass on only the lowest filter's.
            if sids and min(sids) == self._first_filter(raw.topic) and not internal(raw.topic):
                message = decode(raw.topic, raw.payload, raw.properties)
                for handler in self._router.match(message.topic):
                    try:
                        await deliver(handler, message)
                    except Exception:
                        log.exception("subscriber %r failed on %s", handler, message.topic)
            if connection is not None:
                connection.ack(raw)

    async def durable_queues(self) -> list[DurableQueue]:
        return await self.registry.list()

    async def delete_durable_queue(self, name: str) -> None:
        await self.registry.delete(name)
