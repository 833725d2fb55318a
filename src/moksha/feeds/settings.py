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

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moksha.config import Config
from moksha.errors import ConfigError

__all__ = ["DEFAULT_CACHE_URL", "FeedSettings"]

DEFAULT_CACHE_URL = "sqlite:///moksha-feeds.sqlite"
"""The feed cache when ``feed_cache`` is not set: a SQLite file in the working directory."""

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


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
        read = _Reader(config or {})
        defaults = cls()
        return cls(
            enabled=read.flag("moksha.feedaggregator", defaults.enabled),
            urls=read.words("feed.urls"),
            file=Path(read.text("feed.file") or defaults.file),
            cache_url=read.text("feed_cache") or defaults.cache_url,
            max_age=read.seconds("feed.max_age", defaults.max_age, allow_zero=True),
            poll_frequency=read.seconds("feed.poll_frequency", defaults.poll_frequency),
            deferred_groups=read.count("feed.deferred_groups", defaults.deferred_groups),
            timeout=read.seconds("feed.timeout", defaults.timeout),
            max_bytes=read.count("feed.max_bytes", defaults.max_bytes),
            max_backoff=read.seconds("feed.max_backoff", defaults.max_backoff),
        )


class _Reader:
    """Parses one key at a time; each error names the key and where its value came from."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    def _bad(self, key: str, value: Any, wanted: str) -> ConfigError:
        source = None
        if isinstance(self.config, Config):
            try:
                source = self.config.source(key)
            except KeyError:
                source = None
        return ConfigError(f"expected {wanted}, got {value!r}", key=key, source=source)

    def flag(self, key: str, default: bool) -> bool:
        value = self.config.get(key, default)
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise self._bad(key, value, "true or false (or yes/no, on/off, 1/0)")

    def text(self, key: str) -> str | None:
        value = self.config.get(key)
        if value is None:
            return None
        if isinstance(value, Path):
            return str(value)
        if not isinstance(value, str):
            raise self._bad(key, value, "text")
        return value.strip() or None

    def words(self, key: str) -> tuple[str, ...]:
        value = self.config.get(key, ())
        if isinstance(value, str):
            return tuple(word for word in re.split(r"[,\s]+", value) if word)
        if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            return tuple(item.strip() for item in value if item.strip())
        raise self._bad(key, value, "URLs separated by commas or spaces")

    def seconds(self, key: str, default: float, *, allow_zero: bool = False) -> float:
        value = self.config.get(key, default)
        try:
            number = float(value) if isinstance(value, str | int | float) else math.nan
        except ValueError:
            number = math.nan
        low_ok = number >= 0 if allow_zero else number > 0
        if isinstance(value, bool) or not (low_ok and number < math.inf):
            raise self._bad(key, value, f"a number of seconds {'>=' if allow_zero else '>'} 0")
        return number

    def count(self, key: str, default: int) -> int:
        value = self.config.get(key, default)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self._bad(key, value, "a whole number >= 1")
        return value
