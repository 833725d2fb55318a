"""The built-in widgets: Python faces of Moksha's web components.

Each renders one custom element (``static/widgets/*.js``) with its params
as attributes, and needs the live-socket client, the components' module and
their stylesheet on the page:

=====================  ========================  ==========================================
widget                 element                   what it shows
=====================  ========================  ==========================================
``FeedWidget``         ``<moksha-feed>``         messages on a topic, newest first, bounded
``ChartWidget``        ``<moksha-chart>``        numeric fields of messages over time
``InspectorWidget``    ``<moksha-inspector>``    any pattern, tailed: pause, filter, rate
``HubStatusWidget``    ``<moksha-hub-status>``   consumers, producers, backends, clients
=====================  ========================  ==========================================

Pages without Python use the elements directly (see ``moksha-widgets.js``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from moksha.web.resources import Resource
from moksha.widgets.live import MOKSHA_JS, WIDGETS_CSS, WIDGETS_JS
from moksha.widgets.widget import REQUIRED, Param, ParamRefused, Widget

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = [
    "ChartWidget",
    "ComponentWidget",
    "FeedWidget",
    "HubStatusWidget",
    "InspectorWidget",
]

STATUS_PATH = "/_moksha/hub/status"


def positive_int(value: Any) -> int:
    """``value`` as an int of at least 1.

    Raises:
        ValueError: it is not.
    """
    number = int(value)
    if number < 1:
        raise ValueError(f"{number} < 1")
    return number


def positive_float(value: Any) -> float:
    """``value`` as a float greater than 0.

    Raises:
        ValueError: it is not.
    """
    number = float(value)
    if not number > 0:
        raise ValueError(f"{number} <= 0")
    return number


def whole_number(value: Any) -> int:
    """``value`` as an int of at least 0.

    Raises:
        ValueError: it is not.
    """
    number = int(value)
    if number < 0:
        raise ValueError(f"{number} < 0")
    return number


def name_list(value: str | Sequence[str]) -> str:
    """Names as a comma-separated attribute value (``"a, b"`` or ``["a", "b"]`` → ``"a,b"``).

    Raises:
        ValueError: there is no name.
    """
    names = value.split(",") if isinstance(value, str) else list(value)
    cleaned = [str(name).strip() for name in names if str(name).strip()]
    if not cleaned:
        raise ValueError("no name given")
    return ",".join(cleaned)


class ComponentWidget(Widget):
    """A widget rendering one of Moksha's web components, its params as attributes.

    Attributes:
        element: the custom element's tag name.
        attributes: the params written as attributes (``_`` becomes ``-``);
            None and False are left out, True is written bare.
    """

    element: ClassVar[str]
    attributes: ClassVar[tuple[str, ...]] = ()
    template = (
        '<{{ element }} id="{{ id }}"{% if css_class %} class="{{ css_class }}"{% endif %}'
        '{% for name, value in attributes %} {{ name }}{% if value is not true %}="{{ value }}"'
        "{% endif %}{% endfor %}></{{ element }}>"
    )
    resources: ClassVar[Sequence[Resource]] = (WIDGETS_CSS, MOKSHA_JS, WIDGETS_JS)

    def prepare(self, **params: Any) -> dict[str, Any]:
        context = super().prepare(**params)
        context["element"] = self.element
        context["attributes"] = [
            (name.replace("_", "-"), context[name])
            for name in self.attributes
            if context[name] is not None and context[name] is not False
        ]
        return context


class FeedWidget(ComponentWidget):
    """A live list of the messages on ``topic``, newest first, at most ``limit`` of them.

    Messages with ``title``/``link``/``summary`` fields (as a feed entry has)
    show as links; any other body as compact JSON.
    """

    element = "moksha-feed"
    page_title = "Messages"
    attributes = ("topic", "limit", "backlog", "history", "history_minutes", "heading")
    params: ClassVar[Mapping[str, Any]] = {
        "topic": Param("#", type=str, doc="the pattern whose messages are listed"),
        "limit": Param(20, type=positive_int, doc="how many entries are kept"),
        "backlog": Param(None, type=positive_int, doc="messages kept while paused (1000)"),
        "history": Param(
            None, type=whole_number, doc="messages loaded from the hub's history (default: limit)"
        ),
        "history_minutes": Param(
            None, type=positive_float, doc="loaded messages are at most this old"
        ),
        "heading": Param("Messages", type=str, doc="the card's title"),
    }


class ChartWidget(ComponentWidget):
    """A live line chart of numeric ``fields`` of the messages on ``topic``.

    Fields are names in the body (``load1``), dotted for nested ones
    (``memory.used``); each is a series with its own colour in the legend.
    """

    element = "moksha-chart"
    page_title = "Chart"
    attributes = (
        "topic",
        "fields",
        "labels",
        "points",
        "history",
        "history_minutes",
        "unit",
        "min",
        "max",
        "heading",
    )
    params: ClassVar[Mapping[str, Any]] = {
        "topic": Param(REQUIRED, type=str, doc="the pattern whose messages are drawn"),
        "fields": Param(REQUIRED, type=name_list, doc="body fields to draw, one series each"),
        "labels": Param(None, type=name_list, doc="legend names of the fields, in order"),
        "points": Param(120, type=positive_int, doc="how many points each series keeps"),
        "history": Param(
            None, type=whole_number, doc="messages loaded from the hub's history (default: points)"
        ),
        "history_minutes": Param(
            None, type=positive_float, doc="loaded points are at most this old"
        ),
        "unit": Param(None, type=str, doc="shown after values: %, B/s (bytes get k/M/G)"),
        "min": Param(None, type=float, doc="the axis's lowest value; default: from the data"),
        "max": Param(None, type=float, doc="the axis's highest value; default: from the data"),
        "heading": Param("Chart", type=str, doc="the card's title"),
    }


class InspectorWidget(ComponentWidget):
    """Tail any pattern: pattern box, pause/resume, text filter, pretty JSON, messages/s."""

    element = "moksha-inspector"
    page_title = "Topic inspector"
    attributes = ("pattern", "limit", "backlog", "heading")
    params: ClassVar[Mapping[str, Any]] = {
        "pattern": Param("#", type=str, doc="the pattern tailed at first"),
        "limit": Param(200, type=positive_int, doc="how many messages are kept"),
        "backlog": Param(
            None, type=positive_int, doc="messages kept while paused or one is open (1000)"
        ),
        "heading": Param("Topic inspector", type=str, doc="the card's title"),
    }


class HubStatusWidget(ComponentWidget):
    """The hub's consumers, producers, backends and live-socket clients, refreshed."""

    element = "moksha-hub-status"
    page_title = "Hub status"
    # It polls the status JSON: no live-socket client, so its page shows no socket state.
    resources: ClassVar[Sequence[Resource]] = (WIDGETS_CSS, WIDGETS_JS)
    attributes = ("src", "interval", "heading")
    params: ClassVar[Mapping[str, Any]] = {
        "src": Param(STATUS_PATH, type=str, doc="the status JSON endpoint"),
        "interval": Param(2.0, type=positive_float, doc="seconds between refreshes"),
        "heading": Param("Hub", type=str, doc="the card's title"),
    }

    def for_request(self, params: Mapping[str, str], config: Config) -> Widget:
        """As :meth:`Widget.for_request`; a ``src`` from a request must be a path of this site.

        Raises:
            ParamRefused: ``src`` names another site (the page would read it).
        """
        src = params.get("src")
        if src is not None and (not src.startswith("/") or src.startswith("//")):
            raise ParamRefused(
                f"{self.name}: from a link, the param 'src' must be a path on this site "
                f"(such as {STATUS_PATH}), not another site's address"
            )
        return super().for_request(params, config)
