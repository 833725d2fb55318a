"""Where the feed stream's feeds come from, and the feeds file ``moksha feeds`` manages.

The stream polls, each URL once, in this order:

1. ``feed.urls`` in the configuration (separated by commas or spaces);
2. the feeds file, ``feed.file`` (``feeds.txt`` in the working directory):
   one URL a line; blank lines and lines starting with ``#`` are skipped,
   and so is the rest of a line after `` #``::

       # Project news
       https://example.org/news.atom
       https://blog.example.org/rss.xml   # the team blog

3. the feeds that feed widgets show: a :class:`~moksha.feeds.widgets.FeedWidget`
   (or live one) installed on the ``moksha.widget`` entry point with a
   ``url``, and the cells of the dashboard layout (``moksha.dashboard.layout``)
   that show one with a ``url`` param.

The file is read again at every poll, so ``moksha feeds add`` takes effect
without restarting the hub.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moksha.errors import ConfigError, MokshaError
from moksha.feeds.fetch import check_url
from moksha.feeds.settings import FeedSettings

__all__ = [
    "FeedSource",
    "add_to_feeds_file",
    "feed_sources",
    "read_feeds_file",
    "remove_from_feeds_file",
    "widget_feed_urls",
]

log = logging.getLogger("moksha.feeds")

_COMMENT = re.compile(r"(^|\s)#.*$")


@dataclass(frozen=True, slots=True)
class FeedSource:
    """A feed URL and where it was found.

    Attributes:
        url: the feed's URL.
        origin: ``feed.urls``, the feeds file's path, or ``widget <name>``.
    """

    url: str
    origin: str


def read_feeds_file(path: str | Path) -> list[str]:
    """The URLs of a feeds file, in order, each once; none when the file does not exist.

    Raises:
        ConfigError: the file exists but cannot be read.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the feeds file {path}: {exc}", key="feed.file") from exc
    lines = (_COMMENT.sub("", line).strip() for line in text.splitlines())
    return list(dict.fromkeys(line for line in lines if line))


def add_to_feeds_file(path: str | Path, url: str) -> bool:
    """Append ``url`` to a feeds file (created when missing) unless it is listed already.

    Returns:
        True when added, False when it was there.

    Raises:
        ConfigError: the file cannot be read or written.
    """
    path = Path(path)
    if url in read_feeds_file(path):
        return False
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        separator = "" if not text or text.endswith("\n") else "\n"
        path.write_text(f"{text}{separator}{url}\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the feeds file {path}: {exc}", key="feed.file") from exc
    return True


def remove_from_feeds_file(path: str | Path, url: str) -> bool:
    """Remove the lines listing ``url`` from a feeds file, keeping the comments.

    Returns:
        True when removed, False when it was not listed.

    Raises:
        ConfigError: the file cannot be read or written.
    """
    path = Path(path)
    if url not in read_feeds_file(path):
        return False
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if _COMMENT.sub("", line).strip() != url]
    try:
        path.write_text("".join(kept), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the feeds file {path}: {exc}", key="feed.file") from exc
    return True


def widget_feed_urls(config: Mapping[str, Any]) -> list[FeedSource]:
    """The feeds shown by installed feed widgets and by the dashboard layout's feed cells.

    A layout that cannot be read is left to the dashboard to report; here it
    is logged and skipped.
    """
    from moksha.feeds.widgets import FeedWidget
    from moksha.widgets.registry import find_widget, installed_widgets

    found: list[FeedSource] = []
    for name, obj in installed_widgets().items():
        if isinstance(obj, type) and not issubclass(obj, FeedWidget):
            continue
        try:
            widget = obj() if isinstance(obj, type) else obj
        except Exception:
            log.exception("feeds: the widget %r cannot be instantiated; its feed is skipped", name)
            continue
        if isinstance(widget, FeedWidget) and (url := widget.feed_url()):
            found.append(FeedSource(url, f"widget {name}"))
    layout = config.get("moksha.dashboard.layout")
    if not layout:
        return found
    from moksha.widgets.dashboard import load_layout

    try:
        cells, _ = load_layout(layout)
    except ConfigError as exc:
        log.warning("feeds: the dashboard layout is skipped: %s", exc)
        return found
    for cell in cells:
        if not isinstance(cell, dict) or not isinstance(cell.get("widget"), str):
            continue  # the dashboard says so when it starts
        try:
            widget = find_widget(cell["widget"])
        except MokshaError:
            continue  # the dashboard says so when it starts
        if not isinstance(widget, FeedWidget):
            continue
        params = cell.get("params")
        url = params.get("url") if isinstance(params, dict) else None
        if url := url or widget.feed_url():
            found.append(FeedSource(str(url), f"widget {cell['widget']} in {layout}"))
    return found


def feed_sources(settings: FeedSettings, config: Mapping[str, Any]) -> list[FeedSource]:
    """Every feed the stream polls, each URL once (first origin wins).

    URLs that are not ``http``/``https`` are logged and left out.

    Raises:
        ConfigError: the feeds file exists but cannot be read.
    """
    candidates = [
        *(FeedSource(url, "feed.urls") for url in settings.urls),
        *(FeedSource(url, str(settings.file)) for url in read_feeds_file(settings.file)),
        *widget_feed_urls(config),
    ]
    sources: dict[str, FeedSource] = {}
    for source in candidates:
        try:
            url = check_url(source.url)
        except MokshaError as exc:
            log.warning("feeds: %s (in %s) is skipped: %s", source.url, source.origin, exc)
            continue
        sources.setdefault(url, FeedSource(url, source.origin))
    return list(sources.values())
