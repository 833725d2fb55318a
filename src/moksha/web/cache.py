"""A cache for widgets and apps: in memory by default, Redis when configured.

::

    cache = cache_from_config(config)        # moksha.cache.url = redis://127.0.0.1:6379/0
    value = await cache.get_or_set("feed:fedora", fetch_feed, ttl=60)

Values are stored as JSON on both kinds, so what works with one works with the
other and a caller never shares a mutable object with the cache.  ``ttl`` is in
seconds (fractions allowed); None keeps a value until it is deleted, or (in
memory) until :attr:`MemoryCache.size` newer values pushed it out.

The Redis client (redis-py's asyncio client) connects on first use, on the
event loop of that use.  Its failures raise :class:`CacheError` from ``get``,
``set`` and ``delete``; :meth:`Cache.get_or_set` logs them and computes the
value instead, so a cache outage slows pages down rather than breaking them.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from moksha.config import Config
from moksha.errors import ConfigError, MokshaError
from moksha.web.settings import WebSettings

__all__ = ["Cache", "CacheError", "MemoryCache", "RedisCache", "cache_from_config"]

log = logging.getLogger("moksha.web")

CACHE_WAIT = 2.0  # seconds a cache command waits for a connection when many are in flight


class CacheError(MokshaError):
    """The cache's store failed (Redis unreachable, a value that is not JSON)."""


class Cache(ABC):
    """The cache API: ``get``, ``set``, ``delete``, ``get_or_set``; an async context manager."""

    async def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default`` when there is none (or it expired).

        Raises:
            CacheError: the store failed.
        """
        text = await self._load(key)
        return default if text is None else json.loads(text)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` (anything JSON can hold) under ``key`` for ``ttl`` seconds.

        Raises:
            CacheError: the value is not JSON-serializable, or the store failed.
            ValueError: ``ttl`` is not positive.
        """
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")
        try:
            text = json.dumps(value, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise CacheError(f"cannot cache {key!r}: the value is not JSON ({exc})") from exc
        await self._store(key, text, ttl)

    async def delete(self, key: str) -> None:
        """Forget ``key`` (no error when it is not there).

        Raises:
            CacheError: the store failed.
        """
        await self._remove(key)

    async def get_or_set(
        self, key: str, factory: Callable[[], Any | Awaitable[Any]], ttl: float | None = None
    ) -> Any:
        """The value under ``key``; when missing, ``factory()``'s (awaited if async), stored.

        A failing store is logged and the value computed anyway.

        Raises:
            CacheError: the computed value is not JSON-serializable.
        """
        try:
            text = await self._load(key)
        except CacheError as exc:
            log.warning("cache unavailable, computing %r: %s", key, exc)
            text = None
        if text is not None:
            return json.loads(text)
        value = factory()
        if inspect.isawaitable(value):
            value = await value
        try:
            await self.set(key, value, ttl)
        except CacheError as exc:
            if isinstance(exc.__cause__, TypeError | ValueError):
                raise
            log.warning("cache unavailable, not storing %r: %s", key, exc)
        return value

    async def aclose(self) -> None:  # noqa: B027 - a no-op unless the store holds connections
        """Release the store's connections."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @abstractmethod
    async def _load(self, key: str) -> str | None: ...

    @abstractmethod
    async def _store(self, key: str, text: str, ttl: float | None) -> None: ...

    @abstractmethod
    async def _remove(self, key: str) -> None: ...


class MemoryCache(Cache):
    """Keeps the ``size`` most recently used values in this process.

    Args:
        size: how many values to keep; the least recently used go first.
        clock: seconds, monotonic (tests pass their own to expire values at will).
    """

    def __init__(self, size: int = 1024, *, clock: Callable[[], float] = time.monotonic) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, not {size}")
        self.size = size
        self._clock = clock
        self._values: OrderedDict[str, tuple[float | None, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    async def _load(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        expires, text = entry
        if expires is not None and self._clock() >= expires:
            del self._values[key]
            return None
        self._values.move_to_end(key)
        return text

    async def _store(self, key: str, text: str, ttl: float | None) -> None:
        expires = None if ttl is None else self._clock() + ttl
        self._values[key] = (expires, text)
        self._values.move_to_end(key)
        while len(self._values) > self.size:
            self._values.popitem(last=False)

    async def _remove(self, key: str) -> None:
        self._values.pop(key, None)


class RedisCache(Cache):
    """Keeps values in Redis, shared by every process using the same URL and prefix.

    Args:
        url: ``redis://[user:password@]host:port/db`` (``rediss://``, ``unix://`` too).
        prefix: put before every key, so caches of several sites can share a database.

    Raises:
        ValueError: the URL is not one redis-py understands.
    """

    def __init__(self, url: str, *, prefix: str = "moksha:cache:") -> None:
        from moksha.redis_client import redis_client

        self.prefix = prefix
        # Many requests at once wait for a connection a moment rather than fail.
        self._client = redis_client(url, wait=CACHE_WAIT)

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        import redis

        try:
            return await getattr(self._client, method)(*args, **kwargs)
        except redis.RedisError as exc:
            raise CacheError(f"Redis {method} failed: {exc}") from exc

    async def _load(self, key: str) -> str | None:
        value = await self._call("get", self.prefix + key)
        return None if value is None else bytes(value).decode()

    async def _store(self, key: str, text: str, ttl: float | None) -> None:
        # Milliseconds, so a fraction of a second is a real expiry (never 0: that is an error).
        expiry = None if ttl is None else max(1, round(ttl * 1000))
        await self._call("set", self.prefix + key, text, px=expiry)

    async def _remove(self, key: str) -> None:
        await self._call("delete", self.prefix + key)

    async def aclose(self) -> None:
        await self._client.aclose()


def cache_from_config(config: Config | WebSettings) -> Cache:
    """The cache the configuration describes: Redis for ``moksha.cache.url``, else memory.

    Args:
        config: the configuration, or the web settings read from it.

    Returns:
        A :class:`RedisCache` or a :class:`MemoryCache` of ``moksha.cache.size`` entries.

    Raises:
        ConfigError: ``moksha.cache.url`` is not a Redis URL.
    """
    settings = config if isinstance(config, WebSettings) else WebSettings.from_config(config)
    if settings.cache_url is None:
        return MemoryCache(settings.cache_size)
    try:
        return RedisCache(settings.cache_url)
    except ValueError as exc:
        raise ConfigError(
            f"{exc}; use redis://host:6379/0 (or rediss://, unix://)", key="moksha.cache.url"
        ) from exc
