"""Several ``moksha start`` nodes as one cluster, on a shared store.

With ``moksha.cluster.url`` set, each node keeps in that store (Redis, or
PostgreSQL) what must be the same on every node: the live-socket history and
its event ids (:mod:`.store`), its heartbeat, and the leader locks that make a
polling producer run once per cluster (:mod:`.node`).  Messages themselves go
between nodes over the broker, as they always did.  Unset, nothing here runs.

:mod:`.store` is the contract, :mod:`.redis_store` and :mod:`.postgres_store`
its two implementations, :mod:`.node` this process's membership.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moksha.cluster.node import ClusterNode
from moksha.cluster.store import Bounds, ClusterError, ClusterStore, StoredEvent
from moksha.config import Config
from moksha.errors import ConfigError

__all__ = [
    "URL_KEY",
    "Bounds",
    "ClusterError",
    "ClusterNode",
    "ClusterStore",
    "StoredEvent",
    "cluster_from_config",
    "store_from_url",
]

URL_KEY = "moksha.cluster.url"


def store_from_url(url: str, prefix: str = "moksha", bounds: Bounds | None = None) -> ClusterStore:
    """The store a cluster URL names.

    Args:
        url: ``redis://...`` / ``rediss://...`` or ``postgresql://...``.
        prefix: the start of the store's key or table names.
        bounds: how much live-socket history to keep.

    Raises:
        ConfigError: the URL names no store Moksha has.
    """
    scheme = url.partition("://")[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        from moksha.cluster.redis_store import RedisStore

        return RedisStore(url, prefix, bounds)
    if scheme.startswith("postgres"):
        from moksha.cluster.postgres_store import PostgresStore

        return PostgresStore(url, prefix, bounds)
    raise ConfigError(
        f"a cluster store URL begins with redis:// or postgresql://, not {scheme or url[:10]!r}",
        key=URL_KEY,
    )


def cluster_from_config(config: Config | Mapping[str, Any]) -> ClusterNode | None:
    """This process's cluster membership, or None when ``moksha.cluster.url`` is unset.

    Raises:
        ConfigError: the URL names no store Moksha has.
    """
    config = Config.coerce(config)
    if not config.cluster_url:
        return None
    bounds = Bounds(config.livesocket_history_size, config.livesocket_history_age)
    try:
        store = store_from_url(config.cluster_url, config.cluster_prefix, bounds)
    except ConfigError as exc:
        message = str(exc).removeprefix(f"{URL_KEY}: ")
        raise ConfigError(message, key=URL_KEY, source=config.source(URL_KEY)) from None
    return ClusterNode(store, config.cluster_ttl)
