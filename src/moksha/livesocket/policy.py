"""What the live socket allows: limits, who may publish, protected topics, origins.

A :class:`LiveSocketPolicy` is read once from the configuration
(:meth:`LiveSocketPolicy.from_config`) and shared, frozen, by every
connection's :class:`~moksha.livesocket.protocol.Session`.  Security is on by
default: browsers cannot publish, and only same-origin (or, with no
``allowed_origins`` configured, loopback) pages may connect.

========================================  =======================  =========
key                                       meaning                  default
========================================  =======================  =========
moksha.livesocket.max_frame_bytes         largest client frame     65536
moksha.livesocket.max_subscriptions       per connection           100
moksha.livesocket.max_messages_per_second client frames, per conn  20
moksha.livesocket.publish_allow           patterns browsers may    (none)
                                          publish to
moksha.livesocket.websocket.client2server the original's switch:   false
                                          true = publish anywhere
moksha.livesocket.protected               patterns needing a token (none)
moksha.livesocket.token_secret            HS256 secret (>= 32 B)   (none)
moksha.livesocket.allowed_origins         cross-origin pages       (none)
moksha.livesocket.slow_policy             conflate | disconnect    conflate
========================================  =======================  =========
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from moksha.errors import ConfigError
from moksha.livesocket.tokens import TokenError, check_secret, verify_token
from moksha.topics import TopicRouter

__all__ = ["LiveSocketPolicy", "origin_allowed", "token_grants"]

_PREFIX = "moksha.livesocket."
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


@dataclass(frozen=True)
class LiveSocketPolicy:
    """The rules every live-socket connection follows.

    Attributes:
        max_frame_bytes: the largest frame a client may send, in UTF-8 bytes;
            a larger one closes the connection (1009).
        max_subscriptions: subscriptions one connection may hold at once.
        max_messages_per_second: frames a client may send per second, with
            bursts of twice that (a token bucket).
        publish_allow: patterns of the topics clients may publish to; empty
            (the default) means clients cannot publish.
        protected: patterns of topics only clients with a token granting them
            may receive (or publish to).
        token_secret: the HS256 secret tokens are signed with; required when
            ``protected`` is set.  Never shown by ``repr``.
        allowed_origins: origins (``https://app.example.com``) of pages on other
            origins that may connect; ``*`` allows any.  When empty, same-origin
            pages and pages served from a loopback host (``localhost``,
            ``127.0.0.1``, ``[::1]``) may connect, which suits development.
        conflate: when a client's outgoing queue is full, keep only the newest
            message per topic (True) or disconnect it (False, close 4008).

    Raises:
        ConfigError: a value is out of range, a pattern is empty, an allowed
            origin is not written as an origin, the secret is too short, or
            ``protected`` is set without ``token_secret``.
    """

    max_frame_bytes: int = 65536
    max_subscriptions: int = 100
    max_messages_per_second: float = 20.0
    publish_allow: tuple[str, ...] = ()
    protected: tuple[str, ...] = ()
    token_secret: str | None = field(default=None, repr=False)
    allowed_origins: tuple[str, ...] = ()
    conflate: bool = True
    _allow: TopicRouter[str] = field(init=False, repr=False, compare=False)
    _protect: TopicRouter[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("max_frame_bytes", "max_subscriptions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError("must be a whole number >= 1", key=_PREFIX + name)
        rate = self.max_messages_per_second
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ConfigError("must be a number > 0", key=_PREFIX + "max_messages_per_second")
        for name in ("publish_allow", "protected", "allowed_origins"):
            values = tuple(getattr(self, name))
            if not all(isinstance(v, str) and v for v in values):
                raise ConfigError("must be non-empty strings", key=_PREFIX + name)
            object.__setattr__(self, name, values)
        for origin in self.allowed_origins:
            if origin not in ("*", "null") and _origin_address(origin) is None:
                raise ConfigError(
                    f"{origin!r} is not an origin: write it as browsers send it, "
                    "scheme and host (and port if not the default), e.g. https://app.example.com",
                    key=_PREFIX + "allowed_origins",
                )
        if self.token_secret is not None:
            try:
                check_secret(self.token_secret)
            except TokenError as exc:
                raise ConfigError(str(exc), key=_PREFIX + "token_secret") from None
        elif self.protected:
            raise ConfigError(
                "protected topics need moksha.livesocket.token_secret to be set: "
                "without it no client could ever be granted them",
                key=_PREFIX + "protected",
            )
        object.__setattr__(self, "_allow", _router(self.publish_allow))
        object.__setattr__(self, "_protect", _router(self.protected))

    def may_publish(self, topic: str) -> bool:
        """Whether a pattern of ``publish_allow`` matches ``topic``."""
        return bool(self._allow.match(topic))

    def protects(self, topic: str) -> bool:
        """Whether a ``protected`` pattern matches ``topic``."""
        return bool(self._protect) and bool(self._protect.match(topic))

    @property
    def burst(self) -> float:
        """Frames a client may send back to back: twice the rate, and room to resubscribe.

        A page reconnecting resends one subscribe frame per pattern at once.
        """
        return max(2.0 * self.max_messages_per_second, self.max_subscriptions + 10.0)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LiveSocketPolicy:
        """Read the policy from Moksha's configuration (see the module's table of keys).

        Values may be typed (from code) or text (from an INI file or the
        environment): numbers as digits, lists of patterns or origins as one
        string separated by commas or spaces.  ``websocket.client2server =
        true``, the original Moksha's switch, allows publishing to every
        topic, as if ``publish_allow`` were ``#``.

        Args:
            config: a :class:`~moksha.config.Config` or any mapping of keys.

        Returns:
            The policy.

        Raises:
            ConfigError: a value has the wrong type or is out of range, naming its key.
        """

        def read(name: str, default: Any, parse: Callable[[Any], Any], wanted: str) -> Any:
            value = config.get(_PREFIX + name, default)
            try:
                return parse(value)
            except (TypeError, ValueError):
                shown = "" if name == "token_secret" else f", not {value!r}"
                raise ConfigError(f"expected {wanted}{shown}", key=_PREFIX + name) from None

        publish_allow = read("publish_allow", (), _words, "patterns separated by commas")
        if read("websocket.client2server", False, _boolean, "true or false"):
            publish_allow = ("#",)
        return cls(
            max_frame_bytes=read("max_frame_bytes", 65536, _integer, "a whole number of bytes"),
            max_subscriptions=read("max_subscriptions", 100, _integer, "a whole number"),
            max_messages_per_second=read(
                "max_messages_per_second", 20.0, _number, "a number of messages"
            ),
            publish_allow=publish_allow,
            protected=read("protected", (), _words, "patterns separated by commas"),
            token_secret=read("token_secret", None, _secret, "a string"),
            allowed_origins=read("allowed_origins", (), _words, "origins separated by commas"),
            conflate=read("slow_policy", "conflate", _slow_policy, "conflate or disconnect"),
        )


def origin_allowed(policy: LiveSocketPolicy, origin: str | None, host: str | None) -> bool:
    """Whether a connection with this ``Origin`` header may be accepted.

    Browsers send ``Origin`` on every WebSocket handshake and cross-origin
    request; the check stops a page on another site from using a visitor's
    browser (and cookies) to read or publish topics.

    Args:
        policy: supplies ``allowed_origins``.
        origin: the request's ``Origin`` header; None when absent (a program,
            not a browser: ``moksha tail``, curl), which is allowed.
        host: the request's ``Host`` header: an origin naming the same host
            and port is the page's own origin, always allowed.

    Returns:
        True when absent, same-origin, listed in ``allowed_origins`` (or ``*``
        is), or, with ``allowed_origins`` empty, on a loopback host.
    """
    if origin is None:
        return True
    page = _origin_address(origin)
    if page is None:
        return "*" in policy.allowed_origins or origin in policy.allowed_origins
    if host is not None and _same_host(page, host):
        return True
    if not policy.allowed_origins:
        return _is_loopback(page[1])
    listed = (_origin_address(o) for o in policy.allowed_origins if o != "*")
    return "*" in policy.allowed_origins or page in listed


def token_grants(policy: LiveSocketPolicy, token: str | None, topic: str) -> bool:
    """Whether ``token`` is valid under ``policy`` and grants ``topic``.

    For requests that carry a token but no session, e.g. ``POST
    /livesocket/publish`` with ``Authorization: Bearer <token>``.

    Args:
        policy: supplies ``token_secret``; without one no token is valid.
        token: the token, or None/empty when the request had none.
        topic: the topic the request wants to publish to or read.

    Returns:
        True when the token verifies, has not expired and one of its patterns
        matches ``topic``.
    """
    if not token or policy.token_secret is None:
        return False
    try:
        grant = verify_token(token, policy.token_secret)
    except TokenError:
        return False
    return grant.allows(topic, time.time())


def _origin_address(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an origin, lower-cased, the port made explicit."""
    try:
        parts = urlsplit(origin.strip().rstrip("/"))
        scheme, name, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        return None
    if not name or scheme not in _DEFAULT_PORTS:
        return None  # e.g. "null", sent by sandboxed frames and file:// pages
    return scheme, name, port if port is not None else _DEFAULT_PORTS[scheme]


def _same_host(page: tuple[str, str, int], host: str) -> bool:
    try:
        parts = urlsplit("//" + host.strip())
        name, port = parts.hostname, parts.port
    except ValueError:
        return False
    # A Host header without a port means the scheme's default one.
    return name == page[1] and (
        port == page[2] or (port is None and _DEFAULT_PORTS[page[0]] == page[2])
    )


def _is_loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _router(patterns: tuple[str, ...]) -> TopicRouter[str]:
    router: TopicRouter[str] = TopicRouter()
    for pattern in patterns:
        router.add(pattern, pattern)
    return router


# -- parsers for raw config values: each raises TypeError/ValueError on a bad one --


def _integer(value: Any) -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(value)
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(value)
    return float(value)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return word in ("true", "yes", "on", "1")
    raise ValueError(value)


def _words(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(w for w in re.split(r"[,\s]+", value) if w)
    if isinstance(value, list | tuple) and all(isinstance(w, str) for w in value):
        return tuple(w.strip() for w in value if w.strip())
    raise TypeError(value)


def _secret(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise TypeError("secret")
    return value.strip()


def _slow_policy(value: Any) -> bool:
    word = str(value).strip().lower()
    if word not in ("conflate", "disconnect"):
        raise ValueError(value)
    return word == "conflate"
