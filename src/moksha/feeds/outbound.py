"""What the server may fetch because a request asked: feed URLs from a query string.

``/widgets/feed_entries?url=...`` would otherwise let anyone make the server
fetch any URL, and learn from the answer which ports of which hosts behind it
are open (server-side request forgery).  A URL a request names is fetched
only under these rules:

1. A feed the configuration names (``feed.urls``, the feeds file, the
   dashboard layout, an installed feed widget) is shown as for the stream.
2. Any other URL must match a pattern of ``moksha.feeds.allow``, else it is
   refused before any connection (so the refusal says nothing of the network).
   A pattern is a URL whose host and path may hold ``*``:
   ``https://*.example.org/feeds/*``.  Scheme and port must be equal (the
   scheme's default port when none is written; ``:*`` admits any port); a
   pattern without a path admits every path.
3. Such a URL is fetched only from global addresses: a host that resolves to
   a loopback, link-local, private or otherwise non-global address is refused,
   at every redirect too, unless ``moksha.feeds.allow_private = true``.  The
   connection goes to the address that was checked (no second DNS answer).

>>> url_matches("https://*.example.org/feeds/*", "https://news.example.org/feeds/a.xml")
True
>>> url_matches("https://*.example.org/*", "https://evil.test/x.example.org/a")
False
>>> url_matches("https://example.org", "https://example.org:6379/")
False
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from moksha.config import Config
from moksha.feeds.fetch import check_url

__all__ = ["FeedRequestPolicy", "PublicAddressTransport", "is_public_address", "url_matches"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def url_matches(pattern: str, url: str) -> bool:
    """Whether ``url`` is one the ``moksha.feeds.allow`` pattern ``pattern`` admits.

    The host is matched as a host name (``*`` never reaches into the path),
    the port exactly, the path and query with ``*`` wildcards.
    """
    want = urlsplit(pattern.strip())
    any_port = want.netloc.endswith(":*")
    if any_port:
        want = want._replace(netloc=want.netloc[:-2])
    try:
        got = httpx.URL(url)
    except httpx.InvalidURL:
        return False
    if not want.hostname or not got.host or want.scheme.lower() != got.scheme:
        return False
    if not fnmatch.fnmatchcase(got.host, want.hostname.lower()):
        return False
    try:
        want_port = want.port or _DEFAULT_PORTS.get(want.scheme.lower())
    except ValueError:
        return False
    if not any_port and want_port != (got.port or _DEFAULT_PORTS.get(got.scheme)):
        return False
    want_path = (want.path or "/*") + (f"?{want.query}" if want.query else "")
    got_path = got.raw_path.decode("ascii", errors="replace")
    return fnmatch.fnmatchcase(got_path, want_path)


def is_public_address(address: str) -> bool:
    """Whether ``address`` (an IP address) is globally routable.

    Loopback, link-local, private, shared (CGNAT), multicast, reserved and
    unspecified addresses are not, nor IPv4 addresses written as IPv6.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class PublicAddressTransport(httpx.AsyncBaseTransport):
    """An httpx transport that connects only to global addresses.

    Each request (each redirect too) resolves its host, refuses it when any
    address is not public, and connects to the address it checked, keeping the
    host name for the ``Host`` header and TLS.

    Args:
        inner: the transport that sends the request; default httpx's own.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        port = request.url.port or _DEFAULT_PORTS.get(request.url.scheme, 80)
        addresses = await _addresses(host, port)
        if not addresses or not all(is_public_address(a) for a in addresses):
            # One message for every refusal: it must not tell what is there.
            raise httpx.ConnectError("refused: not a public address", request=request)
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=addresses[0]),
            headers=request.headers,  # the Host header still names the host
            stream=request.stream,
            extensions={**request.extensions, "sni_hostname": host},
        )
        return await self._inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _addresses(host: str, port: int) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class FeedRequestPolicy:
    """Which feed URLs a request may name, and how they are fetched.

    Attributes:
        configured: the feeds the configuration names (shown as for the stream).
        allow: ``moksha.feeds.allow`` patterns admitting other URLs.
        allow_private: ``moksha.feeds.allow_private``: admitted URLs may reach
            non-public addresses.
    """

    configured: frozenset[str]
    allow: tuple[str, ...] = ()
    allow_private: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> FeedRequestPolicy:
        """The policy of ``config``: its feeds, ``moksha.feeds.allow`` and ``allow_private``.

        Raises:
            ConfigError: a setting is wrong, or the feeds file cannot be read.
        """
        from moksha.feeds.settings import FeedSettings
        from moksha.feeds.sources import feed_sources

        config = Config.coerce(config)
        settings = FeedSettings.from_config(config)
        configured = frozenset(source.url for source in feed_sources(settings, config))
        return cls(configured, config.feeds_allow, config.feeds_allow_private)

    def is_configured(self, url: str) -> bool:
        """Whether ``url`` is one of the configured feeds."""
        return check_url(url) in self.configured

    def admits(self, url: str) -> bool:
        """Whether a request may name ``url``: configured, or matching an allow pattern."""
        return self.is_configured(url) or _any_match(self.allow, check_url(url))

    def transport(self, url: str) -> httpx.AsyncBaseTransport | None:
        """The transport to fetch ``url`` with: public addresses only, unless trusted.

        Returns:
            None (the network as for the stream) for configured feeds or with
            ``allow_private``; else a :class:`PublicAddressTransport`.
        """
        if self.allow_private or self.is_configured(url):
            return None
        return PublicAddressTransport()


def _any_match(patterns: Iterable[str], url: str) -> bool:
    return any(url_matches(pattern, url) for pattern in patterns)
