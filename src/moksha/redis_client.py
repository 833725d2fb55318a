"""Redis clients whose commands wait for a connection instead of failing under load.

redis-py's asyncio client gives each command in flight a connection of its own,
and its default pool refuses the 101st at once ("Too many connections"): a
hub publishing a burst, or a web site answering many requests, would lose work
to that.  The clients made here share a bounded pool and wait for a free
connection instead, for a bounded time.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio

__all__ = ["MAX_CONNECTIONS", "redis_client"]

MAX_CONNECTIONS = 100
"""Connections one client opens to the server at most (redis-py's own default)."""


def redis_client(url: str, *, wait: float, **options: Any) -> redis.asyncio.Redis:
    """A client of ``url`` whose commands share at most :data:`MAX_CONNECTIONS` connections.

    Args:
        url: ``redis://[user:password@]host:port/db`` (``rediss://``, ``unix://`` too).
        wait: seconds a command waits for a free connection before failing with
            ``redis.ConnectionError`` (a ``RedisError``, as any other failure).
        options: passed to the connections (``socket_timeout``, ``decode_responses``...).

    Raises:
        ValueError: the URL is not one redis-py understands.
    """
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=wait, **options
    )
    return redis.asyncio.Redis.from_pool(pool)  # closing the client closes its pool
