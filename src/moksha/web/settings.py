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
``moksha.web.trusted_origins``          other sites whose pages may POST/PUT/PATCH/DELETE here
======================================  =================================================

Every key but the allow lists is declared in :mod:`moksha.config`, which types
and checks it; a malformed allow list raises :class:`~moksha.errors.ConfigError`
naming the key and its source.
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
        trusted_origins: other origins whose pages may send state-changing requests.
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
    trusted_origins: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> WebSettings:
        """Read the web keys of ``config`` (typed and checked by :mod:`moksha.config`).

        Raises:
            ConfigError: an allow-list key or value is malformed.
        """
        return cls(
            debug=config.debug,
            session_secret=config.session_secret,
            cache_url=config.cache_url,
            cache_size=config.cache_size,
            auth_header=config.auth_header,
            auth_groups_header=config.auth_groups_header,
            login_url=config.auth_login_url,
            allow=MappingProxyType(_allow_lists(config)),
            dashboard_demo=config.dashboard_demo,
            livesocket_url=config.livesocket_url,
            trusted_origins=config.web_trusted_origins,
        )


def _allow_lists(config: Config) -> dict[tuple[str, str], frozenset[str]]:
    # A key family, not declared one by one: the keys are among the config's extras.
    rules: dict[tuple[str, str], frozenset[str]] = {}
    for key, value in config.extras.items():
        if not key.startswith(ALLOW_PREFIX):
            continue
        kind, _, name = key.removeprefix(ALLOW_PREFIX).partition(".")
        if kind not in KINDS or not name:
            raise ConfigError(
                f"expected a key moksha.auth.allow.<{'|'.join(KINDS)}>.<name>",
                key=key,
                source=config.source(key),
            )
        groups = _groups(value)
        if groups is None:
            raise ConfigError(
                f"expected group names separated by commas or spaces, got {value!r}",
                key=key,
                source=config.source(key),
            )
        rules[(kind, name)] = groups
    return rules


def _groups(value: Any) -> frozenset[str] | None:
    if isinstance(value, str):
        return frozenset(word for word in re.split(r"[,\s]+", value) if word)
    if isinstance(value, list | tuple | set | frozenset) and all(isinstance(v, str) for v in value):
        return frozenset(v.strip() for v in value if v.strip())
    return None
