"""Where the AMQP 1.0 backend connects: ``amqp1_url`` parsed once, no I/O.

``amqp://[user:password@]host[:port]`` (port 5672) or ``amqps://...`` (port 5671, TLS
by asyncio, the broker verified against the system's CAs and its host name).  User and
password may be percent-encoded.

>>> Broker.from_url("amqps://guest:p%40ss@broker.example")
Broker(host='broker.example', port=5671, user='guest', tls=True)
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from moksha.errors import ConfigError

__all__ = ["Broker"]

_SCHEMES = {"amqp": (5672, False), "amqps": (5671, True)}  # default port, TLS


@dataclass(frozen=True, slots=True)
class Broker:
    """Where to connect, parsed once from ``amqp1_url``."""

    host: str
    port: int
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> Broker:
        """Parse ``amqp://[user:password@]host[:port]`` (``amqps://`` for TLS).

        Raises:
            ConfigError: not such a URL (naming ``amqp1_url``).
        """
        parts = urlsplit(url)
        try:
            explicit_port = parts.port
        except ValueError:  # not a number
            explicit_port = -1
        if parts.scheme not in _SCHEMES or not parts.hostname or explicit_port == -1:
            raise ConfigError(  # not the URL itself: it may hold a password
                "expected amqp://user:password@host:5672 or amqps://... "
                f"(a {parts.scheme or 'scheme-less'} URL was given)",
                key="amqp1_url",
            )
        port, tls = _SCHEMES[parts.scheme]
        user, password = parts.username, parts.password
        return cls(
            host=parts.hostname,
            port=explicit_port or port,
            user=unquote(user) if user else None,
            password=unquote(password) if password is not None else None,
            tls=tls,
        )

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """For ``amqps://``: verify the broker against the system's CAs and its host name."""
        return ssl.create_default_context() if self.tls else None
