"""Widgets by name: the built-in ones and those installed on the ``moksha.widget`` entry point.

Names are what a dashboard layout's ``"widget"`` and a template's
``widget("name")`` use.  An installed package declares its widgets as::

    [project.entry-points."moksha.widget"]
    weather = "weather.widgets:WeatherWidget"     # a Widget class, or an instance

Installed names come first, so a package may replace a built-in one.
"""

from __future__ import annotations

import functools
import logging

from moksha.plugins import iter_plugins
from moksha.widgets.widget import Widget, WidgetError

__all__ = ["WIDGET_GROUP", "builtin_widgets", "find_widget", "installed_widgets"]

log = logging.getLogger("moksha.widgets")

WIDGET_GROUP = "moksha.widget"


def builtin_widgets() -> dict[str, type[Widget]]:
    """The widgets Moksha ships, by name."""
    from moksha.feeds.widgets import FeedWidget as FeedEntriesWidget
    from moksha.feeds.widgets import LiveFeedWidget
    from moksha.widgets.builtin import (
        ChartWidget,
        FeedWidget,
        HubStatusWidget,
        InspectorWidget,
    )
    from moksha.widgets.grid import Grid
    from moksha.widgets.live import LiveWidget

    return {
        "chart": ChartWidget,
        "feed": FeedWidget,
        "feed_entries": FeedEntriesWidget,
        "live_feed_entries": LiveFeedWidget,
        "grid": Grid,
        "hub_status": HubStatusWidget,
        "inspector": InspectorWidget,
        "live": LiveWidget,
    }


@functools.cache
def installed_widgets() -> dict[str, Widget | type[Widget]]:
    """The widgets of the ``moksha.widget`` entry points, by name (read once per process).

    Entries that fail to load, or are not widgets, are logged and left out.
    """
    found: dict[str, Widget | type[Widget]] = {}
    for plugin in iter_plugins([WIDGET_GROUP]):
        obj = plugin.obj
        if plugin.error:
            log.error("cannot load widget %r (%s): %s", plugin.name, plugin.value, plugin.error)
        elif isinstance(obj, Widget) or (isinstance(obj, type) and issubclass(obj, Widget)):
            found.setdefault(plugin.name, obj)
        else:
            log.error("widget %r (%s) is not a moksha Widget", plugin.name, plugin.value)
    return found


def find_widget(name: str) -> Widget:
    """The widget called ``name``: installed first, then built-in.

    Returns:
        A widget instance (a class found by name is instantiated with its defaults).

    Raises:
        WidgetError: no widget has that name.
    """
    found = installed_widgets().get(name) or builtin_widgets().get(name)
    if found is None:
        known = sorted({*builtin_widgets(), *installed_widgets()})
        raise WidgetError(f"no widget is called {name!r}; known widgets: {', '.join(known)}")
    return found() if isinstance(found, type) else found
