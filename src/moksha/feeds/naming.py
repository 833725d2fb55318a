"""How a feed's URL becomes a topic: ``moksha.feeds.<feed id>``.

The feed id is one topic word (no dots), so ``moksha.feeds.*`` and
``moksha.feeds.#`` both catch every feed, and ``moksha.feeds.<id>`` one feed.
It is made from the URL in four steps:

1. drop the scheme, the user and password, and the fragment; keep host, port,
   path and query (``https://Blog.Example.org/feed.xml`` → ``blog.example.org/feed.xml``);
2. lower-case it and replace every run of characters outside ``[a-z0-9_-]``
   by one ``_``, trimming ``_`` at both ends (``blog_example_org_feed_xml``);
3. cut it to :data:`READABLE_CHARS` characters;
4. append ``-`` and the first 8 hex digits of the SHA-256 of the URL as
   given, so two URLs that read alike (``/a.b`` and ``/a_b``, ``http`` and
   ``https``, long URLs cut to the same start) still get their own topic.

=========================================  ====================================================
URL                                        topic
=========================================  ====================================================
``https://blog.example.org/feed.xml``      ``moksha.feeds.blog_example_org_feed_xml-4c0adcbe``
``http://127.0.0.1:8000/rss?tag=python``   ``moksha.feeds.127_0_0_1_8000_rss_tag_python-2022d118``
``https://example.com/``                   ``moksha.feeds.example_com-0f115db0``
=========================================  ====================================================

The id depends on nothing but the URL, so it is the same in every process
and across restarts; ``moksha feeds list`` prints it.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

__all__ = ["FEEDS_TOPIC_PREFIX", "READABLE_CHARS", "feed_id", "feed_topic"]

FEEDS_TOPIC_PREFIX = "moksha.feeds"
"""The first two words of every feed topic."""

READABLE_CHARS = 48
"""The longest readable part of a feed id (before ``-`` and the hash)."""

_HASH_CHARS = 8
_OUTSIDE_WORD = re.compile(r"[^a-z0-9_-]+")


def feed_id(url: str) -> str:
    """The topic word naming the feed at ``url`` (see the module docstring).

    Args:
        url: the feed's URL, as configured.

    Returns:
        ``host_path_query-hash``: only ``[a-z0-9_-]``, at most 57 characters.
    """
    url = url.strip()
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    readable = host + parts.path + (f"?{parts.query}" if parts.query else "")
    if not host:  # not a URL: take it whole, it is still a name
        readable = url
    word = _OUTSIDE_WORD.sub("_", readable.lower()).strip("_")[:READABLE_CHARS].rstrip("_")
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    return f"{word}-{digest}" if word else digest


def feed_topic(url: str) -> str:
    """The topic new entries of the feed at ``url`` are published on.

    Args:
        url: the feed's URL, as configured.

    Returns:
        ``moksha.feeds.<feed id>``.
    """
    return f"{FEEDS_TOPIC_PREFIX}.{feed_id(url)}"
