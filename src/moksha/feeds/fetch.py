"""Fetching feed documents over HTTP: conditional GET, redirects, a size limit, a deadline.

:class:`Fetcher` wraps one :class:`httpx.AsyncClient` (so fetches of one poll
share connections)::

    async with Fetcher(timeout=30, max_bytes=10 * 2**20) as fetcher:
        result = await fetcher.fetch(url, etag=cached.etag, last_modified=cached.last_modified)
        if result.not_modified:
            ...  # 304: the cached copy is still right

What it guarantees:

- **Conditional GET**: the validators of the last response go out as
  ``If-None-Match`` / ``If-Modified-Since``; a ``304`` comes back as
  :attr:`FetchResult.not_modified` with no body.
- **Redirects** are followed, at most :data:`MAX_REDIRECTS`; the result says
  where the document finally came from.
- **A deadline**: ``timeout`` bounds the whole fetch, connecting to last
  byte, so a server that trickles bytes cannot hold a poll.
- **A size limit**: a ``Content-Length`` above ``max_bytes`` is refused
  before reading, and a body is read in chunks and abandoned the moment it
  passes the limit (decompressed size, so a gzip bomb stops too).
- Only ``http`` and ``https`` URLs; every failure is a
  :class:`~moksha.feeds.errors.FetchError` naming the URL.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import httpx

from moksha import __version__
from moksha.feeds.errors import FetchError

__all__ = ["ACCEPT", "MAX_REDIRECTS", "USER_AGENT", "FetchResult", "Fetcher", "check_url"]

MAX_REDIRECTS = 5
"""Redirects followed before a fetch fails."""

USER_AGENT = f"Moksha/{__version__} feed fetcher (+https://github.com/mokshaproject/moksha)"

ACCEPT = (
    "application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)


def check_url(url: str) -> str:
    """``url`` stripped, once sure it is an ``http``/``https`` URL with a host.

    Raises:
        FetchError: it is not.
    """
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(
            f"{url!r} is not a feed URL: write it as http://host/path or https://host/path.",
            url=url,
        )
    return url


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one fetch brought back.

    Attributes:
        url: the URL asked for.
        final_url: where the document came from, after redirects.
        status: 200-299, or 304 when the cached copy is still right.
        content: the document's bytes; empty on 304.
        content_type: the ``Content-Type`` header, if any.
        etag: the ``ETag`` to send next time, if any.
        last_modified: the ``Last-Modified`` to send next time, if any.
    """

    url: str
    final_url: str
    status: int
    content: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None

    @property
    def not_modified(self) -> bool:
        """The server said 304: nothing changed since the validators sent."""
        return self.status == 304


class Fetcher:
    """Fetches feed documents (an async context manager owning its HTTP client).

    Args:
        timeout: seconds one fetch may take, in all.
        max_bytes: the largest document accepted.
        transport: an httpx transport to use instead of the network (tests,
            proxies); None: httpx's own.

    Raises:
        ValueError: a limit is not positive.
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        max_bytes: int = 10 * 2**20,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not timeout > 0 or max_bytes < 1:
            raise ValueError("timeout and max_bytes must be positive")
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.aclose()

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """GET ``url``, conditionally when validators are given.

        Args:
            url: an ``http``/``https`` URL.
            etag: the ``ETag`` of the copy held; sent as ``If-None-Match``.
            last_modified: its ``Last-Modified``; sent as ``If-Modified-Since``.

        Returns:
            The result: a document (2xx) or ``not_modified`` (304).

        Raises:
            FetchError: a bad URL, no connection, a timeout, too many redirects,
                a document over the size limit, or a status other than 2xx/304.
        """
        url = check_url(url)
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            async with asyncio.timeout(self.timeout):
                return await self._get(url, headers)
        except (TimeoutError, httpx.TimeoutException):
            raise FetchError(
                f"{url} did not answer within {self.timeout:g} s (feed.timeout).", url=url
            ) from None
        except httpx.TooManyRedirects:
            raise FetchError(
                f"{url} redirects more than {MAX_REDIRECTS} times; use the URL it ends at.",
                url=url,
            ) from None
        except httpx.HTTPError as exc:
            raise FetchError(f"cannot fetch {url}: {_why(exc)}.", url=url) from exc

    async def _get(self, url: str, headers: dict[str, str]) -> FetchResult:
        async with self._client.stream("GET", url, headers=headers) as response:
            final_url = str(response.url)
            status = response.status_code
            if status != 304 and not 200 <= status < 300:
                raise FetchError(
                    f"{url} answered {status} {response.reason_phrase}"
                    + (f" (from {final_url})" if final_url != url else "")
                    + ".",
                    url=url,
                    status=status,
                )
            content = b"" if status == 304 else await self._read(url, response)
            return FetchResult(
                url=url,
                final_url=final_url,
                status=status,
                content=content,
                content_type=response.headers.get("Content-Type"),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
            )

    async def _read(self, url: str, response: httpx.Response) -> bytes:
        """The body, read in chunks; abandoned as soon as it passes ``max_bytes``."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_large(url)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large(url)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, url: str) -> FetchError:
        return FetchError(
            f"{url} is larger than {self.max_bytes} bytes (feed.max_bytes); not read.", url=url
        )


def _why(exc: httpx.HTTPError) -> str:
    """httpx's reason, or the exception's type when it gives none (some connect errors)."""
    text = str(exc).strip()
    return text or type(exc).__name__
