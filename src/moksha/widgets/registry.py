"""Widgets by name: those of the ``moksha.widget`` entry points, Moksha's own included.

Names are what a dashboard layout's ``"widget"`` and a template's
``widget("name")`` use.  An installed package declares its widgets as::

    [project.entry-points."moksha.widget"]
    weather = "weather.widgets:WeatherWidget"     # a Widget class, or an instance

A ToscaWidgets2 widget written for Moksha 1.x (``moksha.wsgi.widgets.api.LiveWidget``
or any ``tw2.core`` widget) is shown through :func:`moksha.wsgi.toscawidgets.adapt`.

Moksha's built-in widgets (``chart``, ``feed``, ``grid``, ``hub_status``,
``inspector``, ``live``, and ``moksha.feeds``' ``feed_entries`` and
``live_feed_entries``) are declared the same way in Moksha's own
``pyproject.toml``: this module knows no widget by name, so a lower layer
never imports an upper one.  Another package's widget of the same name
replaces Moksha's.
"""

from __future__ import annotations

import functools
import logging
import sys

from moksha.plugins import Plugin, iter_plugins
from moksha.widgets.widget import Widget, WidgetError

__all__ = ["WIDGET_GROUP", "find_widget", "installed_widgets"]

log = logging.getLogger("moksha.widgets")

WIDGET_GROUP = "moksha.widget"
_MOKSHA = "moksha"


def _is_tw2(obj: object) -> bool:
    """Whether ``obj`` is a ToscaWidgets2 widget (loading it imported tw2, if it is one)."""
    tw2 = sys.modules.get("tw2.core")
    widget = getattr(tw2, "Widget", None)
    if widget is None:
        return False
    return isinstance(obj, widget) or (isinstance(obj, type) and issubclass(obj, widget))


def _is_mokshas_own(plugin: Plugin) -> bool:
    distribution = (plugin.distribution or "").partition(" ")[0]
    return distribution.lower() == _MOKSHA


@functools.cache
def installed_widgets() -> dict[str, Widget | type[Widget]]:
    """The widgets of the ``moksha.widget`` entry points, by name (read once per process).

    Another package's widget comes before Moksha's own of the same name.
    Entries that fail to load, or are not widgets, are logged and left out.
    """
    plugins = sorted(iter_plugins([WIDGET_GROUP]), key=_is_mokshas_own)  # stable: others first
    found: dict[str, Widget | type[Widget]] = {}
    for plugin in plugins:
        obj = plugin.obj
        if plugin.error:
            log.error("cannot load widget %r (%s): %s", plugin.name, plugin.value, plugin.error)
        elif isinstance(obj, Widget) or (isinstance(obj, type) and issubclass(obj, Widget)):
            found.setdefault(plugin.name, obj)
        elif _is_tw2(obj):
            # A Moksha 1.x widget: shown through the moksha.wsgi compatibility face.
            from moksha.wsgi.toscawidgets import adapt

            found.setdefault(plugin.name, adapt(obj))
        else:
            log.error("widget %r (%s) is not a moksha Widget", plugin.name, plugin.value)
    return found


def find_widget(name: str) -> Widget:
    """The widget called ``name`` on the ``moksha.widget`` entry points.

    Returns:
        A widget instance (a class found by name is instantiated with its defaults).

    Raises:
        WidgetError: no widget has that name (the message lists the known ones;
            none at all means Moksha itself is not installed).
    """
    widgets = installed_widgets()
    found = widgets.get(name)
    if found is None:
        if not widgets:
            raise WidgetError(
                f"no widget is called {name!r}: no widget is installed at all. Install Moksha "
                "(python -m pip install -e .) so its moksha.widget entry points are found."
            )
        known = ", ".join(sorted(widgets))
        raise WidgetError(f"no widget is called {name!r}; known widgets: {known}")
    return found() if isinstance(found, type) else found
