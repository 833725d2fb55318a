"""The web layer's configuration, read once from a :class:`~moksha.config.Config`.

======================================  =================================================
``moksha.debug``                        error pages show the traceback (never in production)
``moksha.session.secret``               signs the session cookie; unset: random per process
``moksha.cache.url``                    ``redis://host:port/db`` for a Redis cache; unset:
                                        in memory
``moksha.cache.size``                   entries the in-memory cache keeps (least recently
                                        used go first)
``moksha.auth.header``                  request header naming the user, set by a reverse proxy
``moksha.auth.groups_header``           request header listing the user's groups (commas)
``moksha.auth.login_url``               where anonymous visitors of a protected page go
``moksha.auth.allow.<kind>.<name>``     groups that may see an app, widget or dashboard
``moksha.dashboard.demo``               ``moksha start`` runs the demo producers
``moksha.livesocket.url``               where pages reach a live socket served elsewhere
                                        (a hub's own port), e.g. ``http://hub:9998``
======================================  =================================================

Values come typed (from code, or once the keys are declared) or as text from an
INI file; both are accepted, and a bad one raises
:class:`~moksha.errors.ConfigError` naming the key and its source.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from moksha.config import Config
from moksha.errors import ConfigError

__all__ = ["ALLOW_PREFIX", "KINDS", "WebSettings"]

ALLOW_PREFIX = "moksha.auth.allow."
"""The key family of the allow lists: ``moksha.auth.allow.<kind>.<name> = group, ...``."""

KINDS = ("app", "widget", "dashboard")
"""What the authorization hook guards."""

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSettings:
    """What the middleware, the app and ``moksha start`` need from the configuration.

    Attributes:
        debug: error pages show tracebacks.
        session_secret: the session cookie's signing key, or None (a random one is used).
        cache_url: a ``redis://`` URL, or None for the in-memory cache.
        cache_size: entries the in-memory cache keeps.
        auth_header: the header naming the user (set by a reverse proxy), or None.
        auth_groups_header: the header listing the user's groups, or None.
        login_url: where anonymous visitors of a protected page are sent, or None.
        allow: ``(kind, name)`` → the groups that may see it (``*`` for any name).
        dashboard_demo: ``moksha start`` runs the demo producers.
        livesocket_url: the base URL of a live socket served by another process, or None.
    """

    debug: bool = False
    session_secret: str | None = None
    cache_url: str | None = None
    cache_size: int = 1024
    auth_header: str | None = None
    auth_groups_header: str | None = None
    login_url: str | None = None
    allow: Mapping[tuple[str, str], frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    dashboard_demo: bool = True
    livesocket_url: str | None = None

    @classmethod
    def from_config(cls, config: Config) -> WebSettings:
        """Read the web keys of ``config``.

        Raises:
            ConfigError: a value is not valid for its key.
        """
        reader = _Reader(config)
        return cls(
            debug=reader.flag("moksha.debug", False),
            session_secret=reader.text("moksha.session.secret"),
            cache_url=reader.text("moksha.cache.url"),
            cache_size=reader.count("moksha.cache.size", 1024),
            auth_header=reader.text("moksha.auth.header"),
            auth_groups_header=reader.text("moksha.auth.groups_header"),
            login_url=reader.text("moksha.auth.login_url"),
            allow=MappingProxyType(reader.allow_lists()),
            dashboard_demo=reader.flag("moksha.dashboard.demo", True),
            livesocket_url=reader.text("moksha.livesocket.url"),
        )


class _Reader:
    """Parses one key at a time, each error naming the key and where its value came from."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def _bad(self, key: str, value: Any, wanted: str) -> ConfigError:
        try:
            source: str | None = self.config.source(key)
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
        if not isinstance(value, str):
            raise self._bad(key, value, "text")
        return value.strip() or None

    def count(self, key: str, default: int) -> int:
        value = self.config.get(key, default)
        if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self._bad(key, value, "a whole number >= 1")
        return value

    def allow_lists(self) -> dict[tuple[str, str], frozenset[str]]:
        # A prefix family, so the keys are not declared one by one: read every key
        # of the mapping (unknown keys are kept as extras) that starts with the prefix.
        rules: dict[tuple[str, str], frozenset[str]] = {}
        for key, value in self.config.items():
            if not key.startswith(ALLOW_PREFIX):
                continue
            kind, _, name = key.removeprefix(ALLOW_PREFIX).partition(".")
            if kind not in KINDS or not name:
                raise self._bad(key, key, f"a key moksha.auth.allow.<{'|'.join(KINDS)}>.<name>")
            groups = _groups(value)
            if groups is None:
                raise self._bad(key, value, "group names separated by commas or spaces")
            rules[(kind, name)] = groups
        return rules


def _groups(value: Any) -> frozenset[str] | None:
    if isinstance(value, str):
        return frozenset(word for word in re.split(r"[,\s]+", value) if word)
    if isinstance(value, list | tuple | set | frozenset) and all(isinstance(v, str) for v in value):
        return frozenset(v.strip() for v in value if v.strip())
    return None
