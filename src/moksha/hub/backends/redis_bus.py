"""The Redis backend: pub/sub for fan-out, Streams consumer groups for shared work.

Selected by ``redis_bus_url = redis://host:6379/0`` (``rediss://`` for TLS),
a key apart from the web cache's ``moksha.cache.url``.  Other keys:
``redis_bus_prefix`` (the keys Moksha creates), ``redis_bus_maxlen`` (the
stream's bound), ``redis_bus_claim_idle`` and ``redis_bus_max_deliveries``
(redelivery and dead letters of consumer groups).

Wire format (:mod:`~moksha.hub.backends.redis_wire`): a plain client that
``SUBSCRIBE``\\ s to a topic reads exactly the JSON body, and one that
``PUBLISH``\\ es a body on a topic reaches Moksha's subscribers; streams carry
``topic``, ``body`` and the headers as fields.

Subscriptions without a group (callbacks, the live socket) use pub/sub: one
connection ``PSUBSCRIBE``\\ s the globs covering every pattern and a
:class:`~moksha.topics.TopicRouter` keeps AMQP's meaning.  Pub/sub keeps
nothing: what is published while the connection is down is lost to these
subscribers (Redis cannot redeliver it).  Subscriptions with a group (the
hub's consumers) use Streams (:mod:`~moksha.hub.backends.redis_groups`):
acknowledged after ``consume``, redelivered, dead-lettered, kept while no hub
runs.  A group's hubs should run the same patterns: a member acknowledges
unread what its own patterns do not match.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from moksha.errors import BackendError, BackendUnavailable
from moksha.hub.backends.base import (
    DEAD_LETTER_HEADER,
    DEAD_LETTER_REASON_HEADER,
    Backend,
    Capabilities,
    DurableQueue,
    FanOutSubscription,
    Handler,
    Subscription,
    deliver,
)
from moksha.hub.backends.redis_groups import (
    GroupSettings,
    GroupStreams,
    GroupSubscription,
    delete_group,
    list_groups,
)
from moksha.hub.backends.redis_wire import (
    Subscribed,
    encode_entry,
    encode_meta,
    escape,
    from_pubsub,
    glob_of,
    minimal,
)
from moksha.message import Message
from moksha.redis_client import redis_client
from moksha.topics import TopicRouter

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["RedisBusBackend"]

log = logging.getLogger(__name__)

# Meta then body on their channels, then (with a third key) the stream entry, atomically.
# The entry's topic and body are the channel and the body (sent once); the rest of its
# fields follow the bound on the stream's length.
_PUBLISH = """
redis.call('PUBLISH', KEYS[1], ARGV[1])
redis.call('PUBLISH', KEYS[2], ARGV[2])
if #KEYS > 2 then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*',
               'topic', KEYS[2], 'body', ARGV[2], unpack(ARGV, 4))
end
return 1
"""
_SOCKET_TIMEOUT = 5.0  # seconds a reply may take before its connection counts as dead
_META_KEPT = 64  # meta messages waiting for their body on one channel, at most
_REFRESH = 10.0  # seconds between two looks at whether any consumer group exists


class RedisBusBackend(Backend):
    """Messages over Redis pub/sub and Streams (see the module docstring)."""

    name = "redis"
    capabilities = Capabilities(
        acknowledgements=True, native_wildcards=False, durable=True, cross_process=True
    )

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._url = config.redis_bus_url or "redis://127.0.0.1:6379/0"
        self._streams = GroupStreams(config.redis_bus_prefix)
        self._meta_prefix = f"{config.redis_bus_prefix}meta:"
        self._meta_glob = escape(self._meta_prefix)  # the meta channels' prefix as a glob
        self._settings = GroupSettings(
            claim_idle=config.redis_bus_claim_idle,
            max_deliveries=config.redis_bus_max_deliveries,
            reconnect_delay=config.reconnect_delay,
            reconnect_max_delay=config.reconnect_max_delay,
        )
        self._consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._publish_script: Any = None
        self._router: TopicRouter[Handler] = TopicRouter()
        self._subscribed: set[Subscribed] = set()
        self._metas: dict[str, collections.deque[bytes]] = {}
        self._groups: list[GroupSubscription] = []
        self._streaming = False  # some consumer group exists: append to the stream
        self._tasks: list[asyncio.Task[None]] = []
        self._reading = False
        self._closing = False
        self._confirming: dict[bytes, asyncio.Future[None]] = {}

    @classmethod
    def configured(cls, config: Config) -> bool:
        """Whether ``redis_bus_url`` is set."""
        return bool(config.redis_bus_url)

    @property
    def address(self) -> str:
        """The server's host, port and database, without credentials (for messages)."""
        return self._url.partition("://")[2].rpartition("@")[2]

    @property
    def appending(self) -> bool:
        """Whether publishes are appended to the stream (some consumer group exists)."""
        return self._streaming

    @property
    def connected(self) -> bool:
        return self._client is not None and self._reading and all(g.connected for g in self._groups)

    async def connect(self) -> None:
        """Connect and start the pub/sub reader.

        Raises:
            BackendUnavailable: the server does not answer.
        """
        if self._client is not None:
            return
        client = self._new_client()
        pubsub = client.pubsub()
        try:
            # A group that starts from now on says so here: publishers append to the stream.
            await pubsub.subscribe(self._streams.announce)
            self._streaming = bool(await client.hlen(self._streams.registry))
        except (RedisError, OSError) as exc:
            await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # redis < 8.2
            await client.aclose()
            raise BackendUnavailable(f"redis: cannot reach {self.address}: {exc}") from exc
        self._client = client
        self._publish_script = client.register_script(_PUBLISH)
        self._reading = True
        self._pubsub = pubsub
        self._tasks = [
            asyncio.create_task(self._read(), name="redis pubsub reader"),
            asyncio.create_task(self._watch_groups(), name="redis group watch"),
        ]

    async def close(self) -> None:
        groups, self._groups = self._groups, []
        for group in groups:
            await group.cancel()
        tasks, self._tasks = self._tasks, []
        self._closing = True  # the reader stops between two reads (see GroupSubscription.cancel)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await asyncio.wait(tasks[:1])
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
            self._pubsub = None
        if client is not None:
            await client.aclose()
        self._router = TopicRouter()
        self._subscribed = set()

    def _connection(self) -> aioredis.Redis:
        if self._client is None:
            raise BackendUnavailable(f"redis: not connected to {self.address}")
        return self._client

    async def publish(self, message: Message) -> None:
        """Publish the meta and the body on the topic's channels, and append to the stream.

        Raises:
            BackendError: the server could not be reached or refused.
        """
        client = self._connection()
        topic = message.topic
        # Keys, then arguments: the meta channel, the topic (and the stream); the meta,
        # the body (and the stream's bound and the entry's other fields).
        command: list[bytes | str | int] = [self._meta_prefix + topic, topic]
        if self._streaming:
            command += (self._streams.stream, encode_meta(message), message.payload)
            command.append(self.config.redis_bus_maxlen)
            for name, value in encode_entry(message).items():
                if name != "topic" and name != "body":  # the script adds them
                    command += (name, value)
        else:
            command += (encode_meta(message), message.payload)
        keys = 3 if self._streaming else 2
        try:
            # One script, not MULTI: as atomic, and one command instead of four (~1.6x faster);
            # EVALSHA itself (redis-py's Script adds a step per call), loaded when missing.
            try:
                await client.evalsha(self._publish_script.sha, keys, *command)
            except NoScriptError:  # a restarted or flushed server: load it, once
                await self._publish_script(command[:keys], command[keys:], client)
        except (RedisError, OSError) as exc:
            raise BackendError(f"redis: could not publish to {topic!r}: {exc}") from exc

    async def requeue(self, message: Message, group: str) -> bool:
        """Put a retry on ``group``'s retry stream (only that group reads it).

        Raises:
            BackendError: the server could not be reached or refused.
        """
        client = self._connection()
        try:
            await client.xadd(
                self._streams.retry(group),
                encode_entry(message),  # type: ignore[arg-type]
                maxlen=self.config.redis_bus_maxlen,
            )
        except (RedisError, OSError) as exc:
            raise BackendError(f"redis: could not put a retry back for {group}: {exc}") from exc
        return True

    async def subscribe(
        self,
        patterns: Sequence[str],
        handler: Handler,
        *,
        group: str | None = None,
        concurrency: int = 1,
    ) -> Subscription:
        """Pub/sub without a group; a Streams consumer group with one (module docstring).

        Raises:
            BackendError: the server could not be reached or refused.
        """
        client = self._connection()
        try:
            if group is None:
                for pattern in patterns:
                    self._router.add(pattern, handler)
                await self._resubscribe()
                return FanOutSubscription(patterns, handler, self._drop)
            subscription = GroupSubscription(
                client,
                self._streams,
                group,
                self._consumer,
                patterns,
                handler,
                concurrency=concurrency,
                settings=self._settings,
                dead_letter=self._dead_letter,
            )
            await subscription.start()
        except (RedisError, OSError) as exc:
            raise BackendError(f"redis: could not subscribe to {list(patterns)}: {exc}") from exc
        self._streaming = True
        self._groups.append(subscription)
        return subscription

    async def _dead_letter(self, message: Message, reason: str) -> None:
        topic = self.config.dead_letter_topic.format(topic=message.topic)
        headers = {
            **message.headers,
            DEAD_LETTER_HEADER: message.topic,
            DEAD_LETTER_REASON_HEADER: reason,
        }
        await self.publish(
            Message(
                topic,
                headers=headers,
                id=message.id,
                payload=message.payload,
                content_type=message.content_type,
            )
        )

    async def _drop(self, patterns: Sequence[str], handler: Handler) -> None:
        """Stop routing ``patterns`` to ``handler``; unsubscribe what no handler needs."""
        for pattern in patterns:
            self._router.remove(pattern, handler)
        if patterns:
            await self._resubscribe()

    async def _resubscribe(self) -> None:
        """Make the connection's channels and globs cover exactly the router's patterns."""
        wanted = minimal(glob_of(pattern) for pattern in self._router.patterns())
        added, removed = wanted - self._subscribed, self._subscribed - wanted
        self._subscribed = wanted
        meta = self._meta_glob
        pubsub = self._pubsub
        if pubsub is None:
            return
        # New ones first: a message may come twice while they overlap, none is lost.
        loop = asyncio.get_running_loop()
        confirmed = []
        for name, is_glob in added:
            for subscribed in (meta + name, name):
                future = self._confirming.setdefault(subscribed.encode(), loop.create_future())
                confirmed.append(future)
            await (pubsub.psubscribe if is_glob else pubsub.subscribe)(meta + name, name)
        # Published after this returns, a message reaches the new subscriptions: the
        # server confirmed them (a publish on another connection could overtake them).
        try:
            async with asyncio.timeout(self.config.publish_timeout):
                await asyncio.gather(*confirmed)
        except TimeoutError:
            raise BackendError(f"redis: {self.address} did not confirm a subscription") from None
        for name, is_glob in removed:
            await (pubsub.punsubscribe if is_glob else pubsub.unsubscribe)(meta + name, name)

    async def _read(self) -> None:
        """Hand each pub/sub message to the handlers whose patterns match its topic."""
        delay = self._settings.reconnect_delay
        while not self._closing:
            try:
                item = await self._pubsub.get_message(timeout=0.1)
                self._reading = True
                delay = self._settings.reconnect_delay
            except (RedisError, OSError) as exc:
                if self._reading:
                    log.warning("redis: pub/sub connection to %s lost (%s)", self.address, exc)
                self._reading = False
                self._metas.clear()
                await asyncio.sleep(delay)  # back off; get_message reconnects and resubscribes
                delay = min(delay * 2, self._settings.reconnect_max_delay)
                continue
            if item is not None:
                await self._dispatch(item)

    async def _dispatch(self, item: dict[str, Any]) -> None:
        if item["type"] not in ("message", "pmessage"):
            if item["type"] in ("subscribe", "psubscribe"):
                future = self._confirming.pop(item["channel"], None)
                if future is not None and not future.done():
                    future.set_result(None)
            return
        channel = item["channel"].decode(errors="replace")
        if channel == self._streams.announce:
            self._streaming = True  # a consumer group started somewhere
            return
        from_meta = (item.get("pattern") or channel.encode()).decode(errors="replace")
        if channel.startswith(self._meta_prefix):
            if not from_meta.startswith(self._meta_glob) and from_meta != channel:
                return  # a broad glob (``#``) also matched the meta channel: once is enough
            topic = channel[len(self._meta_prefix) :]
            self._metas.setdefault(topic, collections.deque(maxlen=_META_KEPT)).append(item["data"])
            return
        waiting = self._metas.get(channel)
        meta = waiting.popleft() if waiting else None
        if waiting is not None and not waiting:
            del self._metas[channel]
        message = from_pubsub(channel, item["data"], meta)
        for handler in self._router.match(channel):
            try:
                await deliver(handler, message)
            except Exception:
                log.exception("subscriber %r failed on %s", handler, channel)

    async def _watch_groups(self) -> None:
        """Notice consumer groups whose announcement this hub missed (it was disconnected)."""
        while True:
            await asyncio.sleep(_REFRESH)  # a periodic look, not a synchronisation
            if self._streaming or self._client is None:
                continue
            with contextlib.suppress(RedisError, OSError):
                self._streaming = bool(await self._client.hlen(self._streams.registry))

    async def durable_queues(self) -> list[DurableQueue]:
        """The consumer groups Moksha created (its registry hash), with their depth."""
        async with self._opened() as client:
            return await list_groups(client, self._streams)

    async def delete_durable_queue(self, name: str) -> None:
        """Destroy consumer group ``name`` and its retry stream.

        Raises:
            BackendError: Moksha did not create it, a hub reads it, or the server refused.
        """
        async with self._opened() as client:
            await delete_group(client, self._streams, name, self.config.redis_bus_claim_idle)

    def _new_client(self) -> aioredis.Redis:
        # Every read has a bound (blocking reads last 0.1 s): a connection silent for
        # longer is dead even if TCP has not said so (a cut mid-stream), and is replaced.
        # A burst of publishes waits for connections, up to moksha.publish_timeout.
        return redis_client(
            self._url,
            wait=self.config.publish_timeout,
            socket_timeout=_SOCKET_TIMEOUT,
            socket_keepalive=True,
        )

    @contextlib.asynccontextmanager
    async def _opened(self) -> Any:
        if self._client is not None:
            yield self._client
            return
        client = self._new_client()
        try:
            yield client
        finally:
            await client.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
