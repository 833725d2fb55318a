"""The original ``moksha.feeds.widgets.live`` path: ``LiveFeedWidget``.

Moksha 1.x code imported the live feed widget from here (``from
moksha.feeds.widgets.live import LiveFeedWidget``) and subclassed it with a
``url``; it is :class:`moksha.feeds.widgets.LiveFeedWidget`, which takes the
same ``url``, ``topic`` and ``limit``.
"""

from moksha.feeds.widgets import LiveFeedWidget

__all__ = ["LiveFeedWidget"]
