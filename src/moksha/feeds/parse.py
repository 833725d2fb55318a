"""Parsing feed documents with feedparser into plain, JSON-ready entries.

:func:`parse_feed` reads RSS 0.9x, 1.0 and 2.0 and Atom 0.3 and 1.0 (all that
feedparser reads) and gives a :class:`ParsedFeed` whose entries are
:class:`Entry` dicts, the same shape the feed stream publishes::

    {"title": "Release 2.0", "link": "https://example.org/2.0",
     "published": "2024-05-01T12:00:00Z", "summary": "<p>What is new</p>",
     "id": "tag:example.org,2024:2.0",
     "feed": "https://example.org/feed.xml", "feed_title": "Example news"}

``published`` is the entry's publication time (else its update time) in UTC,
ISO 8601, or None; ``summary`` is HTML that feedparser has sanitized (no
scripts, no event handlers); ``id`` is the entry's id, else its link, else a
hash of its title and summary: what deduplication goes by.

A document feedparser reads with its lenient parser (not well-formed XML, but
recognisably RSS or Atom) is accepted, as feed readers do; a document it
cannot recognise as a feed raises :class:`~moksha.feeds.errors.NotAFeed`,
which for an HTML page lists the feeds the page advertises.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

import feedparser

from moksha.feeds.errors import NotAFeed

__all__ = ["Entry", "ParsedFeed", "parse_feed"]

log = logging.getLogger("moksha.feeds")

_FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml")
_HEADER_PROBLEMS = (feedparser.NonXMLContentType, feedparser.CharacterEncodingOverride)


class Entry(TypedDict):
    """One feed entry, as :class:`~moksha.feeds.Feed` returns it and the stream publishes it."""

    title: str
    link: str | None
    published: str | None
    summary: str
    id: str
    feed: str
    feed_title: str


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parsed feed document.

    Attributes:
        title: the feed's title (its URL when it has none).
        link: the site the feed belongs to, if it says.
        entries: its entries, in document order (usually newest first).
        version: what feedparser recognised, e.g. ``rss20``, ``atom10``.
        well_formed: False when only the lenient parser could read it.
    """

    title: str
    link: str | None
    entries: tuple[Entry, ...]
    version: str
    well_formed: bool


def parse_feed(
    content: bytes, url: str, *, final_url: str | None = None, content_type: str | None = None
) -> ParsedFeed:
    """Parse a feed document.

    Args:
        content: the document's bytes.
        url: the feed's URL as configured: the ``feed`` field of every entry.
        final_url: where the document came from (after redirects); relative
            links resolve against it.  Default: ``url``.
        content_type: the HTTP ``Content-Type``, which may name the charset.

    Returns:
        The feed and its entries.

    Raises:
        NotAFeed: the document is not RSS or Atom.
    """
    headers = {"content-location": final_url or url}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(content, response_headers=headers)
    if not parsed.get("version"):
        raise _not_a_feed(url, parsed, content, content_type)
    info = parsed.get("feed", {})
    title = _text(info.get("title")) or url
    problem = parsed.get("bozo_exception")
    # A missing or odd Content-Type or charset is not a broken document.
    well_formed = not parsed.get("bozo") or isinstance(problem, _HEADER_PROBLEMS)
    if not well_formed:
        log.info("feed %s is not well-formed (%s); read leniently", url, problem)
    entries = tuple(_entry(raw, url, title) for raw in parsed.get("entries", []))
    return ParsedFeed(title, info.get("link") or None, entries, parsed["version"], well_formed)


def _entry(raw: Mapping[str, Any], url: str, feed_title: str) -> Entry:
    title = _text(raw.get("title"))
    link = raw.get("link") or None
    summary = _text(raw.get("summary"))
    stamp = raw.get("published_parsed") or raw.get("updated_parsed")
    published = None
    if stamp is not None:
        # feedparser gives UTC struct_times; timegm reads them as UTC.
        moment = datetime.fromtimestamp(calendar.timegm(stamp), UTC)
        published = moment.isoformat().replace("+00:00", "Z")
    key = _text(raw.get("id")) or link
    if not key:
        digest = hashlib.sha256(f"{title}\n{summary}".encode()).hexdigest()[:32]
        key = f"sha256:{digest}"
    return Entry(
        title=title,
        link=link,
        published=published,
        summary=summary,
        id=key,
        feed=url,
        feed_title=feed_title,
    )


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _not_a_feed(
    url: str, parsed: Mapping[str, Any], content: bytes, content_type: str | None
) -> NotAFeed:
    """Say what the document is instead of a feed, and which feeds it links to."""
    links = parsed.get("feed", {}).get("links", [])
    alternates = tuple(
        dict.fromkeys(
            link["href"]
            for link in links
            if link.get("rel") == "alternate" and link.get("type") in _FEED_TYPES and "href" in link
        )
    )
    head = content[:512].lstrip().lower()
    is_html = (content_type or "").lower().startswith("text/html") or head.startswith(
        (b"<!doctype html", b"<html")
    )
    if not content.strip():
        what = f"{url} sent an empty document, not an RSS or Atom feed"
    elif is_html:
        what = f"{url} is an HTML page, not an RSS or Atom feed"
    else:
        reason = parsed.get("bozo_exception") or "no <rss>, <rdf:RDF> or <feed> element"
        what = f"{url} is not an RSS or Atom feed ({reason})"
    if alternates:
        listed = ", ".join(alternates)
        what += f"; the page links to {'a feed' if len(alternates) == 1 else 'feeds'}: {listed}"
    return NotAFeed(what + ".", url=url, alternates=alternates)
