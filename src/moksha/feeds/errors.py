"""The errors of :mod:`moksha.feeds`, under Moksha's :class:`~moksha.errors.MokshaError`.

::

    MokshaError
    └── FeedError            a feed cannot be used; the message names its URL
        ├── FetchError       the HTTP request failed: unreachable, timed out, too large, 4xx/5xx
        └── NotAFeed         the document is not RSS or Atom (an HTML page, garbage)

Every message is a sentence that names the feed's URL and, where there is
one, the fix.
"""

from __future__ import annotations

from moksha.errors import MokshaError

__all__ = ["FeedError", "FetchError", "NotAFeed"]


class FeedError(MokshaError):
    """A feed cannot be fetched, parsed or stored.

    Args:
        message: what went wrong, as a sentence.
        url: the feed's URL.
    """

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class FetchError(FeedError):
    """The HTTP request for a feed failed.

    Args:
        message: what went wrong, as a sentence.
        url: the feed's URL.
        status: the HTTP status of the response, when there was one.
    """

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message, url=url)
        self.status = status


class NotAFeed(FeedError):
    """The document at the URL is not an RSS or Atom feed.

    Args:
        message: what the document is instead, as a sentence.
        url: the URL fetched.
        alternates: feed URLs the document links to (an HTML page's
            ``<link rel="alternate" type="application/rss+xml">``), the likely fix.
    """

    def __init__(self, message: str, *, url: str, alternates: tuple[str, ...] = ()) -> None:
        super().__init__(message, url=url)
        self.alternates = alternates
