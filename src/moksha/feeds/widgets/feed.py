"""The original ``moksha.feeds.widgets.feed`` path: ``FeedWidget``.

Moksha 1.x code imported the feed widget from here (``from
moksha.feeds.widgets.feed import FeedWidget``); it is
:class:`moksha.feeds.widgets.FeedWidget`, which takes the same ``url`` and ``limit``.
"""

from moksha.feeds.widgets import FeedWidget

__all__ = ["FeedWidget"]
