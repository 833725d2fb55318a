"""Durable competing consumers on Redis Streams: one consumer group per Moksha group.

Every message a Moksha hub publishes while some group exists is appended to
one stream (``<prefix>stream``, trimmed to about ``redis_bus_maxlen`` entries);
each group reads it with ``XREADGROUP``, so each message is handled once per
group however many hubs run it.  A group also reads its own retry stream
(``<prefix>retry:<group>``), where :meth:`RedisBusBackend.requeue` puts the
hub's retries so only that group sees them again.

Delivery: an entry is acknowledged (``XACK``) once the handler returned; an
entry whose topic matches none of the group's patterns is acknowledged unread.
The acknowledgements of the entries finished since the last read go with the
next read, in one pipeline (one round trip, not one per entry); one lost with
the connection is sent again after it, and until then the entry is pending.
When the handler raises, the entry stays pending: once idle for
``redis_bus_claim_idle`` seconds, some running member of the group claims it
(``XAUTOCLAIM``) and it is delivered again; after ``redis_bus_max_deliveries``
deliveries it goes to the dead-letter topic instead, with the reason.  The
same claim brings back what a crashed hub had in hand.  A hub that stops in
an orderly way puts what it holds unfinished back on the group's retry stream
at once.  Entries trimmed away before a group read them are lost to it (the
bound on the stream's length is the policy when nobody consumes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from moksha.errors import BackendError
from moksha.hub.backends.base import DurableQueue, Handler, Subscription, deliver
from moksha.hub.backends.redis_wire import decode_entry
from moksha.message import Message
from moksha.topics import TopicRouter

__all__ = ["GroupSettings", "GroupStreams", "GroupSubscription", "delete_group", "list_groups"]

log = logging.getLogger(__name__)

_BLOCK_MS = 100  # one blocking read at most: a cancelled subscription stops within it
_STOP_TIMEOUT = 2.0
_READ_AHEAD = 32  # entries read beyond the handler's concurrency (as AMQP's prefetch)


class GroupStreams:
    """The key names of one deployment (``redis_bus_prefix``)."""

    def __init__(self, prefix: str) -> None:
        self.stream = f"{prefix}stream"
        self.registry = f"{prefix}groups"
        self.announce = f"{prefix}groups"  # a channel: a group that starts says so there
        self._retry = f"{prefix}retry:"

    def retry(self, group: str) -> str:
        return self._retry + group


class GroupSubscription(Subscription):
    """One consumer of a group: reads, hands over, acknowledges, claims (module docstring)."""

    def __init__(
        self,
        client: aioredis.Redis,
        streams: GroupStreams,
        group: str,
        consumer: str,
        patterns: Sequence[str],
        handler: Handler,
        *,
        concurrency: int,
        settings: GroupSettings,
        dead_letter: Callable[[Message, str], Awaitable[None]],
    ) -> None:
        self.patterns = tuple(patterns)
        self._client = client
        self._streams = streams
        self._keys = (streams.stream, streams.retry(group))
        self._group = group
        self._consumer = consumer
        self._handler = handler
        self._router: TopicRouter[bool] = TopicRouter()
        for pattern in patterns:
            self._router.add(pattern, True)
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._concurrency = max(1, concurrency)
        self._settings = settings
        self._dead_letter = dead_letter
        self._held: dict[tuple[str, bytes], dict[bytes, bytes]] = {}  # in the handler's hands
        self._acks: dict[str, list[bytes]] = {}  # finished, to acknowledge with the next read
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._handling: set[asyncio.Task[None]] = set()
        self.connected = False

    async def start(self) -> None:
        """Create the group (from now on) and its retry stream; start reading."""
        for key in self._keys:
            with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists already
                await self._client.xgroup_create(key, self._group, id="$", mkstream=True)
            await self._client.xgroup_createconsumer(key, self._group, self._consumer)
        await self._client.hset(self._streams.registry, self._group, "\n".join(self.patterns))
        await self._client.publish(self._streams.announce, self._group)
        self.connected = True
        self._task = asyncio.create_task(self._run(), name=f"redis group {self._group}")

    async def cancel(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        # Not task.cancel() at first: redis-py 8.1 can swallow the cancellation of a
        # blocking read and hang (seen here, not with 7.4); the reader stops between reads.
        self._stopping = True
        for unfinished in self._handling:
            unfinished.cancel()  # what they hold goes back on the retry stream
        try:
            async with asyncio.timeout(_STOP_TIMEOUT):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()  # a handler that does not finish: cancel it
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(_STOP_TIMEOUT):
                    await task
        await self._send_acks()
        await self._give_back()

    async def waiting(self) -> int | None:
        try:
            groups = await self._client.xinfo_groups(self._streams.stream)
        except RedisError:
            return None
        for info in groups:
            if _text(info.get("name")) == self._group:
                return int(info.get("lag") or 0) + int(info.get("pending") or 0)
        return None

    async def _give_back(self) -> None:
        """Put the entries the handler did not finish back on the retry stream, at once."""
        held, self._held = self._held, {}
        if not held:
            return
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                for (key, entry_id), fields in held.items():
                    pipe.xadd(self._keys[1], fields)  # type: ignore[arg-type]
                    pipe.xack(key, self._group, entry_id)
                await pipe.execute()
        except RedisError as exc:
            log.warning(
                "redis: %d unfinished messages of group %s stay pending until claimed (%s)",
                len(held),
                self._group,
                exc,
            )

    async def _run(self) -> None:
        delay = self._settings.reconnect_delay
        own_first = True  # after (re)connecting: this consumer's pending entries first
        last_claim = 0.0
        async with asyncio.TaskGroup() as tasks:
            while not self._stopping:
                try:
                    if time.monotonic() - last_claim > self._settings.claim_idle / 2:
                        last_claim = time.monotonic()
                        await self._claim(tasks)
                    await self._slots.acquire()
                    self._slots.release()
                    room = self._concurrency + _READ_AHEAD - len(self._held)
                    replies = await self._read(own_first, max(1, room))
                    fresh = 0
                    for key, entries in replies or []:
                        for entry_id, fields in entries:
                            if (_text(key), entry_id) not in self._held:
                                fresh += 1
                                await self._start(tasks, _text(key), entry_id, fields)
                    if own_first and not fresh:
                        own_first = False
                    self.connected = True
                    delay = self._settings.reconnect_delay
                except (RedisError, OSError) as exc:
                    if self.connected:
                        log.warning("redis: group %s lost its connection (%s)", self._group, exc)
                    self.connected = False
                    own_first = True
                    await asyncio.sleep(delay)  # back off before trying again
                    delay = min(delay * 2, self._settings.reconnect_max_delay)
            for unfinished in self._handling:
                unfinished.cancel()  # what they hold goes back on the retry stream

    async def _read(self, own_first: bool, count: int) -> Any:
        """XREADGROUP, after the acknowledgements waiting (in one pipeline with it)."""
        streams: dict[Any, Any] = dict.fromkeys(self._keys, b"0" if own_first else b">")
        block = None if own_first else _BLOCK_MS
        acks, self._acks = self._acks, {}
        if not acks:
            return await self._client.xreadgroup(
                self._group, self._consumer, streams, count=count, block=block
            )
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, entry_ids in acks.items():
                    pipe.xack(key, self._group, *entry_ids)
                pipe.xreadgroup(self._group, self._consumer, streams, count=count, block=block)
                replies = await pipe.execute()
        except BaseException:
            self._unsent(acks)
            raise
        return replies[-1]

    def _unsent(self, acks: dict[str, list[bytes]]) -> None:
        for key, entry_ids in acks.items():
            self._acks.setdefault(key, []).extend(entry_ids)

    async def _send_acks(self) -> None:
        """Acknowledge what finished since the last read (a stop does, before giving back)."""
        acks, self._acks = self._acks, {}
        if not acks:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, entry_ids in acks.items():
                    pipe.xack(key, self._group, *entry_ids)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning(
                "redis: %d finished messages of group %s stay pending until claimed (%s)",
                sum(map(len, acks.values())),
                self._group,
                exc,
            )

    def _ack(self, key: str, entry_id: bytes) -> None:
        self._acks.setdefault(key, []).append(entry_id)

    async def _start(
        self,
        tasks: asyncio.TaskGroup,
        key: str,
        entry_id: bytes,
        fields: dict[bytes, bytes] | None,
    ) -> None:
        if not fields:  # trimmed or deleted before anyone read it
            self._ack(key, entry_id)
            return
        self._held[(key, entry_id)] = fields  # from here on, handed back if not finished
        await self._slots.acquire()
        if self._stopping:
            self._slots.release()
            return
        task = tasks.create_task(self._handle(key, entry_id, fields))
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def _handle(self, key: str, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        try:
            try:
                message = decode_entry(fields)
            except ValueError as exc:
                log.warning("redis: entry %s of %s is no message (%s); skipped", entry_id, key, exc)
            else:
                if self._router.match(message.topic):
                    await deliver(self._handler, message)
            self._held.pop((key, entry_id), None)
            self._ack(key, entry_id)
        except Exception:
            self._held.pop((key, entry_id), None)  # pending: claimed again once idle
            log.exception(
                "redis: group %s failed on entry %s of %s; it stays pending",
                self._group,
                entry_id.decode(),
                key,
            )
        finally:
            self._slots.release()

    async def _claim(self, tasks: asyncio.TaskGroup) -> None:
        """Take over entries idle too long in other consumers' hands; dead-letter the worn."""
        idle_ms = int(self._settings.claim_idle * 1000)
        for key in self._keys:
            reply = await self._client.xautoclaim(
                key, self._group, self._consumer, idle_ms, count=self._concurrency * 10
            )
            for entry_id, fields in reply[1]:
                if (key, entry_id) in self._held:
                    continue
                if await self._worn(key, entry_id, fields):
                    continue
                await self._start(tasks, key, entry_id, fields)
            for gone in reply[2] if len(reply) > 2 else ():
                await self._client.xack(key, self._group, gone)

    async def _worn(self, key: str, entry_id: bytes, fields: dict[bytes, bytes] | None) -> bool:
        """Dead-letter the entry when it was delivered too often; say whether it was."""
        pending = await self._client.xpending_range(key, self._group, entry_id, entry_id, 1)
        deliveries = int(pending[0]["times_delivered"]) if pending else 0
        if deliveries <= self._settings.max_deliveries or not fields:
            return False
        try:
            message = decode_entry(fields)
        except ValueError:
            message = None
        if message is not None:
            reason = f"delivered {deliveries} times to group {self._group} without an ack"
            await self._dead_letter(message, reason)
            log.warning("redis: message %s dead-lettered: %s", message.id, reason)
        await self._client.xack(key, self._group, entry_id)
        return True


class GroupSettings:
    """The configured numbers a group subscription works with."""

    def __init__(
        self,
        *,
        claim_idle: float,
        max_deliveries: int,
        reconnect_delay: float,
        reconnect_max_delay: float,
    ) -> None:
        self.claim_idle = claim_idle
        self.max_deliveries = max_deliveries
        self.reconnect_delay = max(0.01, reconnect_delay)
        self.reconnect_max_delay = max(self.reconnect_delay, reconnect_max_delay)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def list_groups(client: aioredis.Redis, streams: GroupStreams) -> list[DurableQueue]:
    """The consumer groups Moksha created (its registry hash), with their depth.

    Raises:
        BackendError: the server could not be reached or refused.
    """
    try:
        registry = await client.hgetall(streams.registry)
        infos = {}
        if registry:
            for info in await client.xinfo_groups(streams.stream):
                infos[_text(info["name"])] = info
    except (RedisError, OSError) as exc:
        raise BackendError(f"redis: cannot list consumer groups: {exc}") from exc
    queues = []
    for raw_group, raw_patterns in sorted(registry.items()):
        group = _text(raw_group)
        info = infos.get(group, {})
        depth = int(info.get("lag") or 0) + int(info.get("pending") or 0)
        patterns = tuple(p for p in _text(raw_patterns).split("\n") if p)
        consumers = int(info.get("consumers") or 0)
        queues.append(DurableQueue(group, group, depth, consumers, patterns))
    return queues


async def delete_group(
    client: aioredis.Redis, streams: GroupStreams, name: str, claim_idle: float
) -> None:
    """Destroy consumer group ``name`` and its retry stream.

    A consumer that read within ``claim_idle`` seconds counts as a hub reading it.

    Raises:
        BackendError: Moksha did not create it, a hub reads it, or the server refused.
    """
    try:
        if not await client.hexists(streams.registry, name):
            raise BackendError(f"redis: {name!r} is not a consumer group Moksha created")
        for consumer in await client.xinfo_consumers(streams.stream, name):
            idle = consumer.get("inactive", consumer.get("idle", 0))
            if 0 <= int(idle) < claim_idle * 1000:
                raise BackendError(f"redis: a hub is reading consumer group {name!r}")
        await client.xgroup_destroy(streams.stream, name)
        await client.delete(streams.retry(name))
        await client.hdel(streams.registry, name)
    except (RedisError, OSError) as exc:
        raise BackendError(f"redis: could not delete group {name!r}: {exc}") from exc
