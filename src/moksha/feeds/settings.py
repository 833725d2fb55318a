"""The feed settings, read once from the configuration into a frozen object.

=========================  =================================  ===================================
key                        default                            meaning
=========================  =================================  ===================================
``moksha.feedaggregator``  ``false``                          the hub runs the feed stream
``feed.urls``              (empty)                            feeds to poll (commas or spaces)
``feed.file``              ``feeds.txt``                      more feeds, one URL a line
``feed_cache``             ``sqlite:///moksha-feeds.sqlite``  parsed feeds and seen entry ids
``feed.max_age``           ``300``                            seconds a cached feed is fresh
``feed.poll_frequency``    ``300``                            seconds between two polls
``feed.deferred_groups``   ``10``                             feeds fetched at once, at most
``feed.timeout``           ``30``                             seconds one fetch may take, in all
``feed.max_bytes``         ``10485760``                       largest feed document, in bytes
``feed.max_backoff``       ``3600``                           longest wait to retry a failing feed
=========================  =================================  ===================================

Values may come as text (INI files) or typed (code); a bad one raises
:class:`~moksha.errors.ConfigError` naming the key and where it came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moksha.config import Config, load_config

__all__ = ["DEFAULT_CACHE_URL", "FeedSettings"]

DEFAULT_CACHE_URL = "sqlite:///moksha-feeds.sqlite"
"""The feed cache when ``feed_cache`` is not set: a SQLite file in the working directory."""


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """Everything :mod:`moksha.feeds` reads from the configuration.

    Attributes:
        enabled: ``moksha.feedaggregator``: the hub's feed stream polls.
        urls: ``feed.urls``: the feeds the configuration names.
        file: ``feed.file``: the feeds file (one URL a line, ``#`` comments).
        cache_url: ``feed_cache``: SQLAlchemy URL of the feed cache.
        max_age: ``feed.max_age``: seconds a cached feed is fresh.
        poll_frequency: ``feed.poll_frequency``: seconds between polls.
        deferred_groups: ``feed.deferred_groups``: concurrent fetches, at most.
        timeout: ``feed.timeout``: seconds one fetch may take, connection to last byte.
        max_bytes: ``feed.max_bytes``: a larger document is refused.
        max_backoff: ``feed.max_backoff``: the longest wait before retrying a failing feed.
    """

    enabled: bool = False
    urls: tuple[str, ...] = ()
    file: Path = Path("feeds.txt")
    cache_url: str = DEFAULT_CACHE_URL
    max_age: float = 300.0
    poll_frequency: float = 300.0
    deferred_groups: int = 10
    timeout: float = 30.0
    max_bytes: int = 10 * 2**20
    max_backoff: float = 3600.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> FeedSettings:
        """Read the feed keys of ``config`` (a :class:`~moksha.config.Config` or a dict).

        Args:
            config: the configuration; None gives the defaults.

        Returns:
            The settings.

        Raises:
            ConfigError: a value is not valid for its key.
        """
        if not isinstance(config, Config):  # a plain dict: the defaults and what it says
            config = load_config(overrides=config or {}, environ={}, search=False)
        return cls(
            enabled=config.feedaggregator,
            urls=config.feed_urls,
            file=Path(config.feed_file),
            cache_url=config.feed_cache,
            max_age=config.feed_max_age,
            poll_frequency=config.feed_poll_frequency,
            deferred_groups=config.feed_deferred_groups,
            timeout=config.feed_timeout,
            max_bytes=config.feed_max_bytes,
            max_backoff=config.feed_max_backoff,
        )
