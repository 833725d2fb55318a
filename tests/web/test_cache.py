"""The cache: in memory (LRU + TTL) by default, Redis when moksha.cache.url says so."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio
from web_support import make_config

from moksha.errors import ConfigError
from moksha.web import Cache, CacheError, MemoryCache, RedisCache, cache_from_config
from support import TIMEOUT, free_endpoint, require_service

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- both kinds ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def fresh_redis_cache() -> AsyncIterator[RedisCache]:
    """A Redis cache with keys of its own, deleted afterwards."""
    require_service("Redis", 6379)
    prefix = f"moksha-test:{secrets.token_hex(4)}:"
    async with RedisCache(REDIS_URL, prefix=prefix) as redis_cache:
        yield redis_cache
        async with redis.asyncio.Redis.from_url(REDIS_URL) as raw:
            keys = [key async for key in raw.scan_iter(f"{prefix}*")]
            if keys:
                await raw.delete(*keys)


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    """Each kind of cache, empty."""
    if request.param == "memory":
        yield MemoryCache()
    else:
        async with fresh_redis_cache() as redis_cache:
            yield redis_cache


async def test_set_get_delete(cache: Cache) -> None:
    assert await cache.get("k") is None
    assert await cache.get("k", "default") == "default"
    await cache.set("k", {"n": [1, 2], "ok": True, "none": None})
    assert await cache.get("k") == {"n": [1, 2], "ok": True, "none": None}
    await cache.delete("k")
    await cache.delete("k")  # deleting what is not there is fine
    assert await cache.get("k", "gone") == "gone"


async def test_a_stored_none_is_a_value_not_a_miss(cache: Cache) -> None:
    calls: list[int] = []
    await cache.set("nothing", None)
    assert await cache.get_or_set("nothing", lambda: calls.append(1)) is None
    assert calls == []


async def test_values_are_copies_not_shared_objects(cache: Cache) -> None:
    value = {"items": [1]}
    await cache.set("k", value)
    value["items"].append(2)
    got = await cache.get("k")
    got["items"].append(3)
    assert await cache.get("k") == {"items": [1]}


async def test_many_requests_at_once_all_get_their_value(cache: Cache) -> None:
    # A busy site: more lookups in flight than the Redis client has connections.
    await cache.set("busy", {"n": 1})
    values = await asyncio.gather(*(cache.get("busy") for _ in range(300)))
    assert values == [{"n": 1}] * 300


async def test_get_or_set_computes_once_with_sync_and_async_factories(cache: Cache) -> None:
    calls: list[str] = []

    def compute() -> int:
        calls.append("sync")
        return 7

    async def acompute() -> int:
        calls.append("async")
        return 8

    assert await cache.get_or_set("a", compute) == 7
    assert await cache.get_or_set("a", compute) == 7
    assert await cache.get_or_set("b", acompute, ttl=60) == 8
    assert await cache.get_or_set("b", acompute, ttl=60) == 8
    assert calls == ["sync", "async"]


async def test_what_json_cannot_hold_is_refused(cache: Cache) -> None:
    with pytest.raises(CacheError, match="not JSON"):
        await cache.set("k", object())
    with pytest.raises(CacheError, match="not JSON"):
        await cache.get_or_set("k", lambda: {1, 2})
    with pytest.raises(ValueError, match="positive"):
        await cache.set("k", 1, ttl=0)


# -- memory -------------------------------------------------------------------


async def test_memory_values_expire_after_their_ttl() -> None:
    clock = Clock()
    cache = MemoryCache(clock=clock)
    await cache.set("short", 1, ttl=5)
    await cache.set("forever", 2)
    clock.now += 4.9
    assert await cache.get("short") == 1
    clock.now += 0.1
    assert await cache.get("short") is None
    clock.now += 10**6
    assert await cache.get("forever") == 2


async def test_memory_keeps_the_most_recently_used_values() -> None:
    cache = MemoryCache(size=2)
    await cache.set("a", 1)
    await cache.set("b", 2)
    await cache.get("a")  # a is now more recent than b
    await cache.set("c", 3)
    assert (await cache.get("a"), await cache.get("b"), await cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


# -- redis ----------------------------------------------------------------------


async def test_redis_values_expire_after_their_ttl() -> None:
    async with fresh_redis_cache() as cache:
        await cache.set("short", 1, ttl=0.05)
        await cache.set("long", 2, ttl=60)
        async with asyncio.timeout(TIMEOUT):
            while await cache.get("short") is not None:
                await asyncio.sleep(0.01)
        assert await cache.get("long") == 2


async def test_two_redis_caches_with_one_url_share_values() -> None:
    require_service("Redis", 6379)
    prefix = f"moksha-test:{secrets.token_hex(4)}:"
    async with (
        RedisCache(REDIS_URL, prefix=prefix) as one,
        RedisCache(REDIS_URL, prefix=prefix) as other,
        RedisCache(REDIS_URL, prefix=prefix + "elsewhere:") as elsewhere,
    ):
        await one.set("shared", "hello", ttl=60)
        assert await other.get("shared") == "hello"
        assert await elsewhere.get("shared") is None
        await other.delete("shared")
        assert await one.get("shared") is None


async def test_an_unreachable_redis_raises_cache_errors_but_get_or_set_still_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_endpoint().rpartition(":")[2]
    async with RedisCache(f"redis://127.0.0.1:{port}/0") as down:
        with pytest.raises(CacheError, match="Redis"):
            await down.get("k")
        with caplog.at_level(logging.WARNING, logger="moksha.web"):
            assert await down.get_or_set("k", lambda: 42) == 42
    assert "cache unavailable" in caplog.text


# -- from the configuration ------------------------------------------------------


async def test_the_configuration_chooses_the_cache() -> None:
    memory = cache_from_config(make_config({"moksha.cache.size": "3"}))
    assert isinstance(memory, MemoryCache) and memory.size == 3
    require_service("Redis", 6379)
    async with cache_from_config(make_config({"moksha.cache.url": REDIS_URL})) as redis_cache:
        assert isinstance(redis_cache, RedisCache)
        await redis_cache.set("moksha-test:configured", "yes", ttl=1)
        assert await redis_cache.get("moksha-test:configured") == "yes"


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"moksha.cache.url": "http://127.0.0.1:6379"}, ["moksha.cache.url", "redis://"]),
        ({"moksha.cache.size": "many"}, ["moksha.cache.size", "'many'", "whole number"]),
    ],
)
def test_bad_cache_settings_name_the_key(settings: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        cache_from_config(make_config(settings))
    for word in words:
        assert word in str(caught.value)
