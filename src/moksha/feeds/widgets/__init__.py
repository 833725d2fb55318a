"""Feed widgets: a feed's entries rendered on the server, and live as new ones arrive.

::

    from moksha.feeds.widgets import FeedWidget, LiveFeedWidget

    FeedWidget().render(url="https://example.org/feed.xml", limit=5)

    class ProjectNews(LiveFeedWidget):          # as the original's Feed subclasses
        url = "https://example.org/news.atom"

:class:`FeedWidget` renders the entries of :class:`~moksha.feeds.Feed` (from
the feed cache while it is fresh, else fetched) as a card of links with
their summaries as plain text.  :class:`LiveFeedWidget` renders the same and
subscribes to the feed's topic (``moksha.feeds.<feed id>``), putting each
entry the feed stream publishes on top; it needs the stream on
(``moksha.feedaggregator = true``), which also polls every feed such a
widget shows when it is installed or in the dashboard layout.

Both render without raising when the feed cannot be fetched: the card says
why (a dashboard should not fail because a remote site is down).  A
``url`` that is not ``http``/``https`` is a :class:`~moksha.widgets.WidgetError`.

On a page of its own (``/widgets/feed_entries?url=...``) the URL comes from
a link anyone can send: :meth:`FeedWidget.for_request` admits only what
:mod:`moksha.feeds.outbound` allows, and the card then never says what
answered.

Rendering blocks while a stale feed is fetched (at most ``feed.timeout``).
The cache is ``feed_cache`` of ``config`` (a setting; by default the
configuration :func:`moksha.config.load_config` finds), or the ``cache``
setting: give it the feed stream's so widgets read what the stream fetched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, cast

from markupsafe import Markup

from moksha.config import Config, load_config
from moksha.feeds.cache import FeedCache
from moksha.feeds.errors import FeedError
from moksha.feeds.feed import Feed
from moksha.feeds.fetch import check_url
from moksha.feeds.naming import feed_topic
from moksha.feeds.outbound import FeedRequestPolicy
from moksha.feeds.parse import Entry
from moksha.web.resources import Resource
from moksha.widgets.builtin import positive_int
from moksha.widgets.live import MOKSHA_JS, WIDGETS_CSS, LiveWidget
from moksha.widgets.widget import Param, ParamRefused, Widget, WidgetError

__all__ = ["FeedWidget", "LiveFeedWidget"]

log = logging.getLogger("moksha.feeds")

SUMMARY_CHARS = 280

_TEMPLATE = """\
<section id="{{ id }}" class="{{ css_class }}" data-feed="{{ url }}" data-limit="{{ limit }}">
<header class="moksha-card-header"><h2>{{ heading }}</h2>\
<span class="moksha-meta">{{ entries|length }} of {{ total }}</span></header>
<div class="moksha-card-body">
{%- if error %}<p class="moksha-problem" role="alert">{{ error }}</p>{% endif %}
{%- if not entries %}<p class="moksha-empty">No entries yet.</p>{% endif %}
<ol class="moksha-list moksha-feed-list">
{%- for entry in entries %}
<li class="moksha-feed-entry" data-entry-id="{{ entry.id }}"><div>\
<strong class="moksha-entry-title">{% if entry.href %}<a href="{{ entry.href }}" \
target="_blank" rel="noopener noreferrer">{{ entry.title }}</a>{% else %}\
<span>{{ entry.title }}</span>{% endif %}</strong>
{%- if entry.summary %}<p class="moksha-entry-summary">{{ entry.summary }}</p>{% endif %}\
</div>{% if entry.published %}<div class="moksha-entry-meta">\
<time datetime="{{ entry.published }}">{{ entry.published_text }}</time></div>{% endif %}</li>
{%- endfor %}
</ol></div></section>"""

# Runs in the browser per entry published on the feed's topic: `this` is the <section>.
_ONMESSAGE = """\
var list = this.querySelector("ol.moksha-feed-list");
if (!list || !json || typeof json !== "object") return;
var key = String(json.id || json.link || "");
for (var i = 0; i < list.children.length; i++) {
  if (key && list.children[i].dataset.entryId === key) return;
}
var href = null;
try {
  var url = new URL(String(json.link), location.href);
  if (url.protocol === "http:" || url.protocol === "https:") href = url.href;
} catch (err) {}
var link = document.createElement(href ? "a" : "span");
link.textContent = String(json.title || json.link || "(untitled)");
if (href) { link.href = href; link.target = "_blank"; link.rel = "noopener noreferrer"; }
var title = document.createElement("strong");
title.className = "moksha-entry-title";
title.append(link);
var text = document.createElement("div");
text.append(title);
if (json.summary) {
  var plain = new DOMParser().parseFromString(String(json.summary), "text/html").body.textContent;
  plain = plain.replace(/\\s+/g, " ").trim();
  if (plain.length > SUMMARY_CHARS) plain = plain.slice(0, SUMMARY_CHARS - 1) + "\\u2026";
  var summary = document.createElement("p");
  summary.className = "moksha-entry-summary";
  summary.textContent = plain;
  text.append(summary);
}
var item = document.createElement("li");
item.className = "moksha-feed-entry moksha-feed-new";
item.dataset.entryId = key;
item.append(text);
list.prepend(item);
var empty = this.querySelector(".moksha-empty");
if (empty) empty.hidden = true;
var limit = parseInt(this.dataset.limit, 10) || 10;
while (list.childElementCount > limit) list.lastElementChild.remove();
""".replace("SUMMARY_CHARS", str(SUMMARY_CHARS))


class FeedWidget(Widget):
    """The entries of an RSS or Atom feed, newest first, at most ``limit``.

    Attributes:
        url: the feed a subclass shows when no ``url`` param is given.
        config: the configuration read for the feed settings; None: the one
            :func:`~moksha.config.load_config` finds.
        cache: the feed cache (a :class:`~moksha.feeds.FeedCache` or a URL);
            None: ``feed_cache`` of the configuration.
    """

    url: ClassVar[str | None] = None
    config: ClassVar[Mapping[str, Any] | None] = None
    cache: ClassVar[FeedCache | str | None] = None
    template = _TEMPLATE
    params: ClassVar[Mapping[str, Any]] = {
        "url": Param(None, type=str, doc="the feed's http/https URL"),
        "limit": Param(10, type=positive_int, doc="how many entries are shown"),
        "heading": Param(None, type=str, doc="the card's title; default the feed's title"),
    }
    resources: ClassVar[list[Resource]] = [WIDGETS_CSS]
    css_class = "moksha-card moksha-feed-entries"

    page_title = "Feed"
    _requested: FeedRequestPolicy | None = None  # set when the url came from a request

    def for_request(self, params: Mapping[str, str], config: Config) -> Widget:
        """As :meth:`Widget.for_request`; a feed URL given by a request must be admitted.

        The URL must be a configured feed or match ``moksha.feeds.allow``
        (see :mod:`moksha.feeds.outbound`); the refusal comes before any
        connection, and a failure to fetch an admitted URL is shown without
        saying what answered.

        Raises:
            ParamRefused: the URL is not one a request may name.
            WidgetError: the URL is not an http/https URL, or another param is bad.
        """
        bound = cast("FeedWidget", super().for_request(params, config))  # a copy of self
        url = params.get("url")
        if url is None:
            return bound
        try:
            url = check_url(url)
        except FeedError as exc:
            raise WidgetError(f"{self.name}: {exc}") from None
        policy = FeedRequestPolicy.from_config(config)
        if not policy.admits(url):
            raise ParamRefused(
                f"{self.name}: this site does not show that feed. Its administrator can add "
                "it to feed.urls, or a pattern matching it to moksha.feeds.allow."
            )
        bound._requested = policy
        return bound

    def feed_url(self, params: Mapping[str, Any] | None = None) -> str | None:
        """The feed shown: the ``url`` param given, else the widget's default, else :attr:`url`."""
        given = (params or {}).get("url")
        return given or self._defaults.get("url") or type(self).url

    def prepare(self, **params: Any) -> dict[str, Any]:
        url = self.feed_url(params)
        if not url:
            raise WidgetError(f"{self.name} needs the param 'url' (the feed's URL)")
        try:
            url = check_url(url)
        except FeedError as exc:
            raise WidgetError(f"{self.name}: {exc}") from None
        context = super().prepare(**params)
        entries: Sequence[Entry] = ()
        title, error = url, None
        requested = self._requested
        transport = requested.transport(url) if requested is not None else None
        try:
            config = self.config if self.config is not None else load_config()
            with Feed(url, config=config, cache=self.cache, transport=transport) as feed:
                loaded = feed.load()
            entries, title = loaded.entries, loaded.title
        except FeedError as exc:
            log.warning("%s cannot show %s: %s", self.name, url, exc)
            if requested is not None and not requested.is_configured(url):
                # Asked for by a request: say nothing of what answered (or did not).
                error = "This feed cannot be shown now."
            else:
                error = f"This feed cannot be shown now: {exc}"
        limit = params["limit"]
        context.update(
            url=url,
            heading=params["heading"] or title,
            entries=[_view(entry) for entry in entries[:limit]],
            total=len(entries),
            error=error,
        )
        return context


class LiveFeedWidget(FeedWidget, LiveWidget):
    """A :class:`FeedWidget` that puts each new entry on top as the feed stream publishes it.

    It subscribes to ``moksha.feeds.<feed id>`` of its feed (or the ``topic``
    param), keeps at most ``limit`` entries, and shows each entry once even
    when it was already rendered.
    """

    onmessage = _ONMESSAGE
    page_title = "Live feed"
    resources: ClassVar[list[Resource]] = [WIDGETS_CSS, MOKSHA_JS]
    css_class = "moksha-card moksha-feed-entries moksha-live"

    def prepare(self, **params: Any) -> dict[str, Any]:
        url = self.feed_url(params)
        if params.get("topic") is None and url:
            params["topic"] = feed_topic(url.strip())
        return super().prepare(**params)


def _view(entry: Entry) -> dict[str, Any]:
    """What the template shows of an entry: text only, and only web links."""
    link = entry.get("link") or ""
    href = link if link.startswith(("http://", "https://")) else None
    summary = Markup(entry.get("summary") or "").striptags()
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 1] + "…"
    published = entry.get("published")
    published_text = None
    if published:
        moment = datetime.fromisoformat(published.replace("Z", "+00:00"))
        published_text = moment.strftime("%Y-%m-%d %H:%M UTC")
    return {
        "id": entry["id"],
        "title": entry.get("title") or link or "(untitled)",
        "href": href,
        "summary": summary,
        "published": published,
        "published_text": published_text,
    }
