"""Cluster stores with names of their own, emptied afterwards (Redis and PostgreSQL are shared)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cluster_nodes import POSTGRES_URL, REDIS_URL, drop_redis_keys, unique_prefix

from moksha.cluster import Bounds, ClusterStore, store_from_url
from support import require_service


@pytest.fixture(params=["redis", "postgresql"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ClusterStore]:
    """An open store of each kind, with small bounds so tests can reach them."""
    prefix = unique_prefix()
    bounds = Bounds(size=3, age=60.0, topics=4)
    if request.param == "redis":
        require_service("Redis", 6379)
        url = REDIS_URL
    else:
        require_service("PostgreSQL", 5432)
        url = POSTGRES_URL
    made = store_from_url(url, prefix, bounds)
    async with made:
        yield made
        if request.param == "redis":
            await drop_redis_keys(prefix)
        else:
            await made.drop()  # type: ignore[attr-defined]
