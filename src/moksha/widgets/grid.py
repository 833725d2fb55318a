"""A grid of widgets: the layout of a dashboard.

::

    from moksha.widgets import ChartWidget, FeedWidget, Grid, GridItem

    grid = Grid(columns=3, children=[
        GridItem(ChartWidget(topic="sensors.#", fields="celsius"), span=2),
        FeedWidget(topic="sensors.#"),               # span 1
    ])
    grid.render()

It renders ``<moksha-grid>``: a CSS grid of ``columns`` columns on a wide
screen, two on a tablet and one on a phone, where each cell spans ``span``
columns (at most as many as there are).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from moksha.web.resources import Resource
from moksha.widgets.builtin import positive_int
from moksha.widgets.live import WIDGETS_CSS, WIDGETS_JS
from moksha.widgets.widget import Param, Widget, WidgetError

__all__ = ["Grid", "GridItem"]


@dataclass(frozen=True)
class GridItem:
    """A widget in a grid cell.

    Attributes:
        widget: what the cell shows.
        span: how many columns the cell takes.
        params: given to the widget's render.
    """

    widget: Widget
    span: int = 1
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.widget, Widget):
            raise WidgetError(f"a grid cell holds a Widget, not {self.widget!r}")
        if not isinstance(self.span, int) or self.span < 1:
            raise WidgetError(f"a grid cell spans at least one column, not {self.span!r}")


def _items(children: Sequence[GridItem | Widget]) -> list[GridItem]:
    return [child if isinstance(child, GridItem) else GridItem(child) for child in children]


class Grid(Widget):
    """Widgets arranged in a responsive grid.

    Params: ``columns`` (on a wide screen) and ``children`` (widgets, or
    :class:`GridItem` for a span or params).
    """

    template = (
        '<moksha-grid id="{{ id }}" class="{{ css_class }}"'
        ' style="--moksha-columns: {{ columns }}">'
        "{% for span, html in cells %}"
        '<div class="moksha-cell" style="--moksha-span: {{ span }}">{{ html }}</div>'
        "{% endfor %}</moksha-grid>"
    )
    params: ClassVar[Mapping[str, Any]] = {
        "columns": Param(3, type=positive_int, doc="columns on a wide screen"),
        "children": Param((), type=_items, doc="widgets or GridItems, in reading order"),
    }
    resources: ClassVar[Sequence[Resource]] = (WIDGETS_CSS, WIDGETS_JS)
    css_class = "moksha-grid"

    def prepare(self, **params: Any) -> dict[str, Any]:
        context = super().prepare(**params)
        # Children render now, inside the page's collector, so their resources are recorded too.
        context["cells"] = [
            (min(item.span, params["columns"]), item.widget.render(**item.params))
            for item in params["children"]
        ]
        return context

    def resources_needed(self) -> list[Resource]:
        """The grid's resources and those of its default children."""
        children: list[GridItem] = self._defaults.get("children", [])
        found = [*self.resources]
        for item in children:
            found.extend(item.widget.resources_needed())
        return list(dict.fromkeys(found))
