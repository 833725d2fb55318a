"""The cluster store on Redis (``moksha.cluster.url = redis://host:6379/0``).

Keys, all under ``<prefix>:``:

==================  ==========================================================
``epoch``           the epoch of the offset counter (set once, kept while Redis keeps it;
                    an append that finds it gone begins a new one)
``offset``          the cluster's offset counter (``INCR`` once per message)
``id:<message id>`` the offset a message got, so every node gets the same (expires
                    after the history's age)
``t:<topic>``       sorted set of one topic's events, scored by offset; a member is
                    ``"<offset> <time> <payload>"``
``topics``          sorted set of the kept topics, scored by the time of their last event
``evicted``         hash: topic → the highest offset evicted from it by size
``dropped``         the highest offset of any topic dropped whole (age or topic count)
``node:<id>``       a node's heartbeat (JSON), expiring after the TTL; ``nodes`` lists them
``lock:<name>``     the node holding a leader lock, expiring after the TTL; ``locks`` lists them
==================  ==========================================================

Appending is one Lua script, so assigning the offset, storing the event and
trimming happen atomically.  The script builds the keys of dropped topics from
the prefix: use a single Redis (or one with every key on one slot), not Redis Cluster.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.exceptions import RedisError

from moksha.cluster.store import Bounds, ClusterError, ClusterStore, StoredEvent
from moksha.redis_client import redis_client
from moksha.topics import literal_prefix, matches

__all__ = ["RedisStore"]

log = logging.getLogger("moksha.cluster")

STORE_WAIT = 5.0  # seconds a command waits for a connection when many are in flight

T = TypeVar("T")

_APPEND = """
if redis.call('EXISTS', KEYS[7]) == 0 then return -1 end
local known = false
if ARGV[8] == '1' then known = redis.call('GET', KEYS[2]) end
if known then return tonumber(known) end
local offset = redis.call('INCR', KEYS[1])
if ARGV[8] == '1' then redis.call('SET', KEYS[2], offset, 'PX', ARGV[9]) end
redis.call('ZADD', KEYS[3], offset, offset .. ' ' .. ARGV[3] .. ' ' .. ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
local extra = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[4])
if extra > 0 then
  local gone = redis.call('ZRANGE', KEYS[3], extra - 1, extra - 1, 'WITHSCORES')
  redis.call('HSET', KEYS[5], ARGV[1], gone[2])
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, extra - 1)
end
local doomed = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf',
  tonumber(ARGV[3]) - tonumber(ARGV[5]), 'LIMIT', 0, 10)
local over = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[6])
if over > 0 then
  for _, t in ipairs(redis.call('ZRANGE', KEYS[4], 0, math.min(over, 10) - 1)) do
    table.insert(doomed, t)
  end
end
for _, t in ipairs(doomed) do
  local key = ARGV[7] .. 't:' .. t
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if top[2] and tonumber(top[2]) > tonumber(redis.call('GET', KEYS[6]) or '0') then
    redis.call('SET', KEYS[6], top[2])
  end
  redis.call('DEL', key)
  redis.call('HDEL', KEYS[5], t)
  redis.call('ZREM', KEYS[4], t)
end
return offset
"""

_MARK_GAP = """
local top = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], top)
return top
"""

_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _parse(topic: str, member: str) -> StoredEvent:
    offset, stored, payload = member.split(" ", 2)
    return StoredEvent(int(offset), topic, payload, float(stored))


class RedisStore(ClusterStore):
    """A :class:`~moksha.cluster.store.ClusterStore` on one Redis database.

    Args:
        url: ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS).
        prefix: the start of every key (several clusters can share a database).
        bounds: how much history to keep.
    """

    def __init__(self, url: str, prefix: str = "moksha", bounds: Bounds | None = None) -> None:
        # Any: redis-py types every reply bytes | str, though decode_responses makes it str.
        self._redis: Any = redis_client(url, wait=STORE_WAIT, decode_responses=True)
        self._shown = self._redis.connection_pool.connection_kwargs.get("host", "redis")
        self._p = f"{prefix}:"
        self.bounds = bounds or Bounds()
        self._append = self._redis.register_script(_APPEND)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._mark_gap = self._redis.register_script(_MARK_GAP)
        self._release = self._redis.register_script(_RELEASE)
        self._epoch: str | None = None

    async def _call(self, what: Awaitable[T]) -> T:
        try:
            return await what
        except (RedisError, OSError) as exc:
            raise ClusterError(
                f"the cluster store (Redis at {self._shown}) failed: {exc}; check that it "
                "runs and that moksha.cluster.url names it"
            ) from exc

    async def open(self) -> None:
        """Connect and fix the epoch (see :meth:`ClusterStore.open`)."""
        await self._call(self._redis.set(self._p + "epoch", secrets.token_hex(4), nx=True))
        self._epoch = await self._call(self._redis.get(self._p + "epoch"))

    async def aclose(self) -> None:
        """Disconnect."""
        await self._redis.aclose()

    async def epoch(self) -> str:
        """The epoch of the offset counter."""
        if self._epoch is None:
            await self.open()
        assert self._epoch is not None
        return self._epoch

    async def append(self, topic: str, payload: str, key: str | None, now: float) -> int:
        """The offset of a message, stored once per cluster (see :meth:`ClusterStore.append`)."""
        p, b = self._p, self.bounds
        keys = [p + "offset", f"{p}id:{key}", f"{p}t:{topic}", p + "topics"]
        keys += [p + "evicted", p + "dropped", p + "epoch"]
        args: list[str | int | float] = [topic, payload, repr(now), b.size, b.age, b.topics, p]
        args += ["1" if key else "0", int(b.age * 1000)]
        offset = int(await self._call(self._append(keys=keys, args=args)))
        if offset == -1:
            # Redis lost its data (restarted without persistence, flushed): the counter
            # starts again, so a new epoch must begin, or old ids would name new events.
            log.warning("the cluster store lost its data: a new epoch begins")
            await self.open()
            offset = int(await self._call(self._append(keys=keys, args=args)))
        return offset

    async def offset(self) -> int:
        """The newest offset given so far (see :meth:`ClusterStore.offset`)."""
        return int(await self._call(self._redis.get(self._p + "offset")) or 0)

    async def mark_gap(self) -> None:
        """Raise the store-wide marker to the offset counter (see :meth:`ClusterStore.mark_gap`)."""
        await self._call(self._mark_gap(keys=[self._p + "offset", self._p + "dropped"]))

    async def _topics(self, pattern: str) -> list[str]:
        prefix = literal_prefix(pattern)
        if prefix == pattern:  # no wildcard: one topic
            return [pattern]
        names: list[str] = await self._call(self._redis.zrange(self._p + "topics", 0, -1))
        return [t for t in names if t.startswith(prefix) and matches(pattern, t)]

    async def since(self, pattern: str, last: int, now: float) -> tuple[list[StoredEvent], bool]:
        """The events after ``last`` on ``pattern`` (see :meth:`ClusterStore.since`)."""
        topics = await self._topics(pattern)
        pipe = self._redis.pipeline(transaction=True)
        pipe.get(self._p + "offset")
        pipe.get(self._p + "dropped")
        for topic in topics:
            pipe.zrangebyscore(f"{self._p}t:{topic}", f"({last}", "+inf")
            pipe.hget(self._p + "evicted", topic)
        top, dropped, *rest = await self._call(pipe.execute())
        if last > int(top or 0):
            return [], False
        complete = int(dropped or 0) <= last
        cutoff = now - self.bounds.age
        found: list[StoredEvent] = []
        for topic, members, evicted in zip(topics, rest[::2], rest[1::2], strict=True):
            complete = complete and int(evicted or 0) <= last
            for member in members:
                event = _parse(topic, member)
                if event.time < cutoff:
                    complete = False  # expired: the client missed it and cannot have it
                else:
                    found.append(event)
        found.sort(key=lambda e: e.offset)
        return found, complete

    async def recent(self, pattern: str, count: int, cutoff: float) -> list[StoredEvent]:
        """The newest events on ``pattern`` (see :meth:`ClusterStore.recent`)."""
        if count <= 0:
            return []
        topics = await self._topics(pattern)
        pipe = self._redis.pipeline(transaction=False)
        for topic in topics:
            pipe.zrevrangebyscore(f"{self._p}t:{topic}", "+inf", "-inf", start=0, num=count)
        replies = await self._call(pipe.execute())
        found = [
            event
            for topic, members in zip(topics, replies, strict=True)
            for event in (_parse(topic, member) for member in members)
            if event.time >= cutoff
        ]
        found.sort(key=lambda e: e.offset)
        return found[-count:]

    async def heartbeat(self, node: str, info: dict[str, Any], ttl: float) -> None:
        """Say that ``node`` is alive for ``ttl`` seconds."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(f"{self._p}node:{node}", json.dumps(info), px=int(ttl * 1000))
        pipe.sadd(self._p + "nodes", node)
        await self._call(pipe.execute())

    async def leave(self, node: str) -> None:
        """Remove ``node``'s heartbeat."""
        await self._call(self._redis.delete(f"{self._p}node:{node}"))
        await self._call(self._redis.srem(self._p + "nodes", node))

    async def nodes(self) -> dict[str, dict[str, Any]]:
        """The nodes alive and what each reported."""
        names = sorted(await self._call(self._redis.smembers(self._p + "nodes")))
        if not names:
            return {}
        values = await self._call(self._redis.mget([f"{self._p}node:{n}" for n in names]))
        gone = [name for name, value in zip(names, values, strict=True) if value is None]
        if gone:
            await self._call(self._redis.srem(self._p + "nodes", *gone))
        return {n: json.loads(v) for n, v in zip(names, values, strict=True) if v is not None}

    async def acquire(self, name: str, node: str, ttl: float) -> bool:
        """Take or renew the lock ``name`` (``SET NX PX``, renewed only by its holder)."""
        await self._call(self._redis.sadd(self._p + "locks", name))
        held = await self._call(
            self._acquire(keys=[f"{self._p}lock:{name}"], args=[node, int(ttl * 1000)])
        )
        return bool(held)

    async def release(self, name: str, node: str) -> None:
        """Give up the lock ``name`` if ``node`` holds it."""
        await self._call(self._release(keys=[f"{self._p}lock:{name}"], args=[node]))

    async def leaders(self) -> dict[str, str]:
        """Lock name → holder, for the locks held now."""
        names = sorted(await self._call(self._redis.smembers(self._p + "locks")))
        if not names:
            return {}
        holders = await self._call(self._redis.mget([f"{self._p}lock:{n}" for n in names]))
        return {n: h for n, h in zip(names, holders, strict=True) if h is not None}
