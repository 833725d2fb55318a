"""The dashboard ``moksha start`` shows at ``/``, and the hub status JSON its panel reads.

:func:`dashboard_routes` gives the Starlette routes:

``/``                    the dashboard: a grid of widgets as a whole page
``/_moksha/hub/status``  :func:`~moksha.widgets.status.hub_status` as JSON

The default layout shows the demo producers' data (a load chart, memory and
network charts, a feed of ``moksha.demo.#``), the hub status and the topic
inspector.  ``moksha.dashboard.layout`` names a JSON or TOML file with
another; a JSON file holds a list of cells (or ``{"columns": 3, "widgets":
[...]}``), a TOML file the same as ``columns = 3`` and ``[[widgets]]`` tables::

    [
      {"widget": "chart", "span": 2,
       "params": {"topic": "sensors.#", "fields": "celsius", "heading": "Temperature"}},
      {"widget": "feed", "params": {"topic": "sensors.alerts"}},
      {"widget": "hub_status"}
    ]

``widget`` is a built-in name (``chart``, ``feed``, ``inspector``,
``hub_status``, ``live``, ``grid``) or a ``moksha.widget`` entry point.
"""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from moksha.config import Config
from moksha.errors import ConfigError
from moksha.web.security import page_headers
from moksha.widgets.builtin import STATUS_PATH
from moksha.widgets.demo import SYSTEM_TOPIC
from moksha.widgets.grid import Grid, GridItem
from moksha.widgets.page import render_page
from moksha.widgets.registry import find_widget
from moksha.widgets.status import hub_status
from moksha.widgets.widget import ResourceCollector, WidgetError

if TYPE_CHECKING:
    from moksha.hub.hub import MokshaHub
    from moksha.livesocket import LiveSocket

__all__ = ["DEMO_LAYOUT", "PLAIN_LAYOUT", "dashboard_grid", "dashboard_routes", "load_layout"]

LAYOUT_KEY = "moksha.dashboard.layout"
DEMO_KEY = "moksha.dashboard.demo"
TITLE_KEY = "moksha.dashboard.title"
COLUMNS_KEY = "moksha.dashboard.columns"

DEMO_LAYOUT: list[dict[str, Any]] = [
    {
        "widget": "chart",
        "span": 2,
        "params": {
            "heading": "Load average",
            "topic": SYSTEM_TOPIC,
            "fields": "load1,load5,load15",
            "labels": "1 min,5 min,15 min",
            "min": 0,
        },
    },
    {"widget": "hub_status"},
    {
        "widget": "chart",
        "params": {
            "heading": "Memory in use",
            "topic": SYSTEM_TOPIC,
            "fields": "memory_used_percent",
            "labels": "memory",
            "unit": "%",
            "min": 0,
            "max": 100,
        },
    },
    {
        "widget": "chart",
        "params": {
            "heading": "Network",
            "topic": SYSTEM_TOPIC,
            "fields": "net_rx_bytes_per_s,net_tx_bytes_per_s",
            "labels": "received,sent",
            "unit": "B/s",
            "min": 0,
        },
    },
    {"widget": "feed", "params": {"heading": "Demo messages", "topic": "moksha.demo.#"}},
    {"widget": "inspector", "span": 3},
]
"""The default layout while the demo producers run (``moksha.dashboard.demo``, default on)."""

PLAIN_LAYOUT: list[dict[str, Any]] = [
    {"widget": "feed", "span": 2, "params": {"heading": "Latest messages", "topic": "#"}},
    {"widget": "hub_status"},
    {"widget": "inspector", "span": 3},
]
"""The default layout without the demo producers."""

ARCHIVE_LINKS = Markup(
    '<nav class="moksha-dashboard-links"><a href="/archive/">Archive</a> · '
    '<a href="/archive/dead">Dead letters</a></nav>'
)
"""Above the grid when the archive is on (``moksha.archive = true``)."""


def _flag(config: Mapping[str, Any], key: str, default: bool) -> bool:
    value = config.get(key, default)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ConfigError(f"expected true or false, not {value!r}", key=key)


def load_layout(path: str | Path) -> tuple[list[Any], int | None]:
    """Read a layout file: its cells and, when it says, its number of columns.

    Raises:
        ConfigError: the file cannot be read or is not a layout.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the layout {path}: {exc}", key=LAYOUT_KEY) from exc
    if isinstance(data, list):
        return data, None
    if isinstance(data, dict) and isinstance(data.get("widgets"), list):
        return data["widgets"], data.get("columns")
    raise ConfigError(
        f"{path} must hold a list of cells or {{'columns': N, 'widgets': [...]}}", key=LAYOUT_KEY
    )


def _cell(entry: Any, where: str) -> GridItem:
    if not isinstance(entry, dict) or not isinstance(entry.get("widget"), str):
        raise ConfigError(f'{where}: each cell is {{"widget": NAME, ...}}, not {entry!r}')
    unknown = set(entry) - {"widget", "params", "span"}
    if unknown:
        raise ConfigError(f"{where}: a cell has no {', '.join(sorted(unknown))}")
    params = entry.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: the params of {entry['widget']!r} must be an object")
    try:
        return GridItem(find_widget(entry["widget"]), int(entry.get("span", 1)), params)
    except (WidgetError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def dashboard_grid(config: Mapping[str, Any]) -> tuple[Grid, str]:
    """The dashboard's grid and title, as ``config`` describes them.

    Every widget is rendered once here, so a mistake in a layout file is
    reported at start-up rather than on the first page view.

    Raises:
        ConfigError: a bad layout file, widget name, param or setting.
    """
    layout_path = config.get(LAYOUT_KEY)
    columns: Any = config.get(COLUMNS_KEY)
    if layout_path:
        entries, file_columns = load_layout(layout_path)
        where = f"{LAYOUT_KEY} ({layout_path})"
        columns = columns or file_columns
    else:
        entries = DEMO_LAYOUT if _flag(config, DEMO_KEY, True) else PLAIN_LAYOUT
        where = "the default layout"
    items = [_cell(entry, f"{where}, cell {n}") for n, entry in enumerate(entries, 1)]
    try:
        grid = Grid(columns=columns or 3, children=items)
        with ResourceCollector.collecting():
            grid.render()
    except WidgetError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return grid, str(config.get(TITLE_KEY) or "Moksha")


def dashboard_routes(
    hub: MokshaHub, config: Mapping[str, Any], *, livesocket: LiveSocket | None = None
) -> list[BaseRoute]:
    """The dashboard page at ``/`` and the hub status at ``/_moksha/hub/status``.

    The page links its resources itself, so it works with or without the
    Moksha middleware; its live widgets expect the live socket (and
    ``/livesocket/moksha.js``) and ``/_moksha/static`` on the same origin.

    Args:
        hub: the hub whose status is shown.
        config: read for ``moksha.dashboard.*``.
        livesocket: the live socket serving the pages, when not the hub's own
            (its clients show in the status).

    Raises:
        ConfigError: the layout is wrong (see :func:`dashboard_grid`).
    """
    grid, title = dashboard_grid(config)

    typed = Config.coerce(config)
    parts: list[Any] = [grid]
    if typed.archive:
        parts.insert(0, ARCHIVE_LINKS)

    async def dashboard(request: Request) -> Response:
        # Off the event loop: a widget may fetch something (a feed) to render.
        page = await asyncio.to_thread(render_page, *parts, title=title)
        return HTMLResponse(page, headers=page_headers(request, typed))

    async def status(request: Request) -> Response:
        return JSONResponse(hub_status(hub, livesocket), headers={"Cache-Control": "no-store"})

    return [
        Route("/", dashboard, name="moksha_dashboard"),
        Route(STATUS_PATH, status, name="moksha_hub_status"),
    ]
