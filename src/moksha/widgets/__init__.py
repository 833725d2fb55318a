"""Widgets: templates with params and resources, live widgets, and the built-in dashboard.

===================  ==========================================================
:mod:`.widget`       ``Widget``, ``Param``, ``ResourceCollector`` (resources once per page)
:mod:`.templates`    Jinja2 and Mako rendering; ``environment()`` with a ``widget()`` global
:mod:`.live`         ``LiveWidget``: JavaScript run per message on its topics
:mod:`.builtin`      feed, chart, topic inspector, hub status (web components' Python faces)
:mod:`.grid`         ``Grid``: widgets in a responsive layout
:mod:`.page`         ``render_page``: a whole HTML page around widgets
:mod:`.registry`     widgets by name: the ``moksha.widget`` entry points (ours too)
:mod:`.dashboard`    the dashboard of ``moksha start`` and ``/_moksha/hub/status``
:mod:`.status`       the hub status data
:mod:`.demo`         demo producers: this machine's load/memory/network, a counter
===================  ==========================================================

The web components themselves (``<moksha-feed>`` ...) live in
``moksha/static/widgets/`` and work on any page, Python or not.
"""

from moksha.widgets.builtin import ChartWidget, FeedWidget, HubStatusWidget, InspectorWidget
from moksha.widgets.grid import Grid, GridItem
from moksha.widgets.live import LiveWidget
from moksha.widgets.page import render_page
from moksha.widgets.registry import find_widget
from moksha.widgets.templates import environment
from moksha.widgets.widget import (
    REQUIRED,
    MissingParam,
    Param,
    ParamRefused,
    ResourceCollector,
    Widget,
    WidgetError,
)

__all__ = [
    "REQUIRED",
    "ChartWidget",
    "FeedWidget",
    "Grid",
    "GridItem",
    "HubStatusWidget",
    "InspectorWidget",
    "LiveWidget",
    "MissingParam",
    "Param",
    "ParamRefused",
    "ResourceCollector",
    "Widget",
    "WidgetError",
    "environment",
    "find_widget",
    "render_page",
]
