"""Template engines for widgets: Jinja2 by default, Mako for ``.mak`` files.

Widget templates render with autoescaping on (Jinja2 and Mako alike), so a
message or a param can never inject markup; a widget's rendered HTML is
:class:`~markupsafe.Markup` and goes through unescaped.

Pages of your own use widgets through the ``widget()`` global of
:func:`environment`::

    from moksha.widgets.templates import environment

    env = environment(loader=jinja2.PackageLoader("myapp"))
    # in a template:  {{ widget("feed", topic="org.example.#", limit=20) }}
    #                 {{ widget(my_chart, fields="temperature") }}

With Starlette: ``Jinja2Templates(env=environment(loader=...))``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

if TYPE_CHECKING:
    from moksha.widgets.widget import Widget

__all__ = ["TemplateView", "environment", "render_file", "render_string"]

MAKO_SUFFIXES = (".mak", ".mako")


class TemplateView:
    """The params as attributes: ``w.topic`` in templates written for ToscaWidgets.

    Falls back to the widget's own attributes (``w.resources``, a live
    widget's ``w.onmessage``).
    """

    def __init__(self, widget: Widget | None, values: Mapping[str, Any]) -> None:
        self._widget = widget
        self._values = values

    def __getattr__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        if self._widget is not None and not name.startswith("_"):
            return getattr(self._widget, name)
        raise AttributeError(name)


def _context(values: Mapping[str, Any], widget: Widget | None) -> dict[str, Any]:
    context = dict(values)
    context.setdefault("w", TemplateView(widget, values))
    return context


def _widget_global(name_or_widget: str | Widget, /, **params: Any) -> Markup:
    """``widget(name_or_instance, **params)``: render a widget inside a template.

    A name is a built-in widget (``feed``, ``chart``, ``inspector``,
    ``hub_status``, ``grid``, ``live``) or a ``moksha.widget`` entry point.
    """
    from moksha.widgets.registry import find_widget

    target = find_widget(name_or_widget) if isinstance(name_or_widget, str) else name_or_widget
    return target.render(**params)


def _moksha_resources() -> Markup:
    """``moksha_resources()``: the tags of what the widgets rendered so far need."""
    from moksha.widgets.widget import ResourceCollector

    collector = ResourceCollector.current()
    return collector.html() if collector is not None else Markup("")


def environment(**options: Any) -> jinja2.Environment:
    """A Jinja2 environment whose templates can render widgets.

    Globals: ``widget(name_or_instance, **params)`` renders a widget (see
    :func:`moksha.widgets.registry.find_widget` for names), and
    ``moksha_resources()`` writes the ``<link>``/``<script>`` tags of the
    widgets rendered before it (put it at the end of ``<body>`` when no Moksha
    middleware injects them).

    Args:
        options: passed to :class:`jinja2.Environment` (``loader``, ...);
            ``autoescape`` defaults to on.

    Returns:
        A new environment.
    """
    options.setdefault("autoescape", True)
    env = jinja2.Environment(**options)
    env.globals["widget"] = _widget_global
    env.globals["moksha_resources"] = _moksha_resources
    return env


def _load_path(name: str) -> tuple[str, str, Callable[[], bool]]:
    path = Path(name)
    try:
        mtime = path.stat().st_mtime
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise jinja2.TemplateNotFound(name) from exc

    def uptodate() -> bool:
        try:
            return path.stat().st_mtime == mtime
        except OSError:
            return False

    return source, str(path), uptodate


@functools.cache
def _widget_environment() -> jinja2.Environment:
    # One environment for every widget template: it caches what it compiled.
    # Names are absolute paths; StrictUndefined turns a typo into an error, not a blank.
    return environment(
        loader=jinja2.FunctionLoader(_load_path),
        undefined=jinja2.StrictUndefined,
        cache_size=400,
    )


@functools.lru_cache(maxsize=400)
def _compiled(source: str) -> jinja2.Template:
    return _widget_environment().from_string(source)


def render_string(source: str, values: Mapping[str, Any], widget: Widget | None = None) -> Markup:
    """Render an inline Jinja2 template (compiled once per distinct source).

    Args:
        source: the template.
        values: its context.
        widget: the widget rendering it (``w`` falls back to its attributes).
    """
    return Markup(_compiled(source).render(_context(values, widget)))


def render_file(path: Path, values: Mapping[str, Any], widget: Widget | None = None) -> Markup:
    """Render a template file: Mako for ``.mak``/``.mako``, else Jinja2.

    Args:
        path: the file.
        values: its context.
        widget: the widget rendering it (``w`` falls back to its attributes).

    Raises:
        WidgetError: the file does not exist.
    """
    from moksha.widgets.widget import WidgetError

    if not path.is_file():
        raise WidgetError(f"widget template {path} does not exist")
    if path.suffix in MAKO_SUFFIXES:
        template = _mako_template(path, path.stat().st_mtime)
        return Markup(template.render(**_context(values, widget)))
    template = _widget_environment().get_template(str(path))
    return Markup(template.render(_context(values, widget)))


@functools.lru_cache(maxsize=200)
def _mako_template(path: Path, mtime: float) -> Any:
    # The mtime is part of the cache key, so an edited template is compiled anew.
    from mako.lookup import TemplateLookup  # type: ignore[import-untyped]

    # "h" escapes unless the value is Markup (a rendered widget), as Jinja2's autoescape does
    # (Mako's usual "str" first would turn Markup back into plain text, escaped twice).
    lookup = TemplateLookup(directories=[str(path.parent)], default_filters=["h"])
    return lookup.get_template(path.name)
