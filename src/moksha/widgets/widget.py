"""The widget: a template, the params it takes, the resources it needs, rendered to HTML.

A widget is a class (or an instance of one with some settings changed)::

    from moksha.widgets import Param, Widget

    class Greeting(Widget):
        template = '<p id="{{ id }}" class="{{ css_class }}">Hello, {{ name }}!</p>'
        params = {"name": "world", "times": Param(1, type=int, doc="how often")}

    Greeting().render(name="Moksha")        # Markup('<p id="greeting-1" ...>Hello, Moksha!</p>')
    Greeting(name="you").render()           # an instance with another default

Rendering checks the params (an unknown name or a value its :class:`Param`
cannot convert raises :class:`WidgetError`), gives the element a unique id
(or the ``id`` param), lets :meth:`Widget.prepare` compute what the template
needs, and records the widget's resources in the current
:class:`ResourceCollector`.  Whoever renders the page (the Moksha middleware,
the dashboard, :func:`moksha.widgets.render_page`) opens a collector for the
request and writes each collected resource once.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import inspect
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from markupsafe import Markup

from moksha.errors import MokshaError
from moksha.web.resources import Resource, render_resources
from moksha.widgets.templates import render_file, render_string

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = [
    "REQUIRED",
    "MissingParam",
    "Param",
    "ParamRefused",
    "ResourceCollector",
    "Widget",
    "WidgetError",
]


class WidgetError(MokshaError, ValueError):
    """A widget was given a param it does not take, a value it cannot use, or no template."""


class ParamRefused(WidgetError):
    """A request (a link anyone can send) gave a param only the site's own code may give."""


class MissingParam(WidgetError):
    """A required param was not given.

    Attributes:
        param: its name.
        doc: what it is (the param's ``doc``), or "".
    """

    def __init__(self, message: str, param: str, doc: str = "") -> None:
        super().__init__(message)
        self.param = param
        self.doc = doc


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""The default of a param that every render must give."""


@dataclass(frozen=True, slots=True)
class Param:
    """A declared param: its default, how to check a value, what it means.

    Attributes:
        default: the value when a render does not give one (:data:`REQUIRED`: it must).
        type: converts (and so checks) a given value, e.g. ``int`` turns ``"20"``
            into 20; raising ``ValueError``/``TypeError`` rejects the value.
        doc: one sentence for people reading the widget's code or its docs.
    """

    default: Any = REQUIRED
    type: Callable[[Any], Any] | None = None
    doc: str = ""

    def check(self, widget: str, name: str, value: Any) -> Any:
        """``value`` converted by :attr:`type`.

        Raises:
            WidgetError: the value cannot be converted.
        """
        if self.type is None or value is None:
            return value
        try:
            return self.type(value)
        except (TypeError, ValueError) as exc:
            kind = getattr(self.type, "__name__", repr(self.type))
            raise WidgetError(f"{widget}: param {name!r} must be {kind}, not {value!r}") from exc


_current: contextvars.ContextVar[ResourceCollector | None] = contextvars.ContextVar(
    "moksha_resource_collector", default=None
)


class ResourceCollector:
    """The resources of the widgets rendered during one request (or one page), each once.

    Open one per request with :meth:`collecting`; every :meth:`Widget.render`
    in that context (the same task, or tasks it starts) adds its resources.
    Collectors do not nest: an inner :meth:`collecting` starts an empty one, and
    whoever opened it writes its resources (as :func:`~moksha.widgets.render_page`
    does in the page's ``<head>``).
    """

    def __init__(self) -> None:
        self._resources: dict[Resource, None] = {}
        self._ids: Counter[str] = Counter()

    @classmethod
    @contextlib.contextmanager
    def collecting(cls) -> Iterator[ResourceCollector]:
        """Collect what widgets rendered in this context need; yields the collector."""
        collector = cls()
        token = _current.set(collector)
        try:
            yield collector
        finally:
            _current.reset(token)

    @staticmethod
    def current() -> ResourceCollector | None:
        """The collector of this context, or None outside :meth:`collecting`."""
        return _current.get()

    def add(self, resource: Resource) -> None:
        """Record ``resource`` (again is harmless: each is kept once, first-seen order)."""
        self._resources.setdefault(resource, None)

    def resources(self) -> list[Resource]:
        """What was recorded, each once, in first-seen order."""
        return list(self._resources)

    def html(self) -> Markup:
        """The ``<link>``/``<script>`` tags of the recorded resources, stylesheets first."""
        return Markup(render_resources(self._resources))

    def new_id(self, prefix: str) -> str:
        """``prefix-1``, ``prefix-2``, ...: ids unique within this page."""
        self._ids[prefix] += 1
        return f"{prefix}-{self._ids[prefix]}"


# Ids end up in CSS selectors and JavaScript strings: keep them plain.
_ID = re.compile(r"[A-Za-z][\w.:-]*")


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


class Widget:
    """Base class of widgets.

    Attributes:
        template: an inline Jinja2 template; it sees the params (after
            :meth:`prepare`), ``id``, ``css_class`` and ``w`` (the params as
            attributes, for templates written for ToscaWidgets).
        template_file: instead of ``template``, a file next to the module of
            the class that sets it; ``.mak``/``.mako`` files render with Mako,
            others with Jinja2.
        params: name → default value, or name → :class:`Param`.  Subclasses
            add to their bases' params.  ``id`` and ``css_class`` are always taken.
        resources: the :class:`~moksha.web.resources.JSLink` /
            :class:`~moksha.web.resources.CSSLink` the widget needs on its page.
        css_class: classes always on the widget's element (a render's
            ``css_class`` param adds to them).
        page_title: what a page showing this widget alone (``/widgets/<name>``)
            is called; not inherited: a subclass without one is called by its
            name, in words (see :meth:`standalone_title`).
    """

    template: ClassVar[str | None] = None
    template_file: ClassVar[str | None] = None
    params: ClassVar[Mapping[str, Any]] = {}
    resources: ClassVar[Sequence[Resource]] = ()
    css_class: ClassVar[str] = ""
    page_title: ClassVar[str | None] = None

    def __init__(self, **settings: Any) -> None:
        """A widget with some settings changed.

        Args:
            settings: new defaults for params, or values for the class's public
                attributes (``template``, ``resources``, ``css_class``, a live
                widget's ``topic``/``onmessage``, ...).

        Raises:
            WidgetError: a name is neither a param nor a setting of this widget.
        """
        specs = self.param_specs()
        self._defaults: dict[str, Any] = {}
        for name, value in settings.items():
            if name in specs:
                self._defaults[name] = specs[name].check(self.name, name, value)
            elif self._is_setting(name):
                setattr(self, name, value)
                if name == "template_file" and "template" not in settings:
                    self.template = None  # type: ignore[misc]  # the file replaces the class's
            else:
                raise WidgetError(
                    f"{self.name} has no param or setting {name!r}; "
                    f"its params: {', '.join(sorted(specs))}"
                )

    def with_params(self, **params: Any) -> Widget:
        """A copy of this widget whose defaults are ``params`` (e.g. a request's query).

        Raises:
            WidgetError: a name is not a param, or a value is not valid for it.
        """
        specs = self._known(params)
        bound = copy.copy(self)
        bound._defaults = {
            **self._defaults,
            **{name: specs[name].check(self.name, name, value) for name, value in params.items()},
        }
        return bound

    def for_request(self, params: Mapping[str, str], config: Config) -> Widget:
        """This widget bound to the params of a request (``/widgets/<name>?param=value``).

        A request's params come from whoever sent the link.  Override this to
        refuse those that would make the server act for them (fetch a URL) or
        that the page would run as code; the default binds every param.

        Args:
            params: the query string's params.
            config: the site's configuration.

        Returns:
            The widget to render, as :meth:`with_params` gives it.

        Raises:
            ParamRefused: a param may not come from a request.
            WidgetError: a param is unknown or its value is bad.
        """
        return self.with_params(**params)

    def standalone_title(self, name: str) -> str:
        """The title of a page showing this widget alone, served as ``name``.

        Returns:
            :attr:`page_title` when this widget or its own class sets it, else
            ``name`` in words (``weather_alerts`` → ``Weather alerts``).
        """
        title = vars(self).get("page_title") or vars(type(self)).get("page_title")
        return title or name.replace("_", " ").replace("-", " ").strip().capitalize()

    @property
    def name(self) -> str:
        """The widget's class name, for messages."""
        return type(self).__name__

    @classmethod
    def param_specs(cls) -> dict[str, Param]:
        """Every param this widget takes (its own and its bases'), as :class:`Param`."""
        specs: dict[str, Param] = {"id": Param(None), "css_class": Param("", type=str)}
        for klass in reversed(cls.__mro__):
            for name, spec in vars(klass).get("params", {}).items():
                specs[name] = spec if isinstance(spec, Param) else Param(spec)
        return specs

    def _known(self, params: Mapping[str, Any]) -> dict[str, Param]:
        """The param specs, once sure ``params`` names only params.

        Raises:
            WidgetError: some name is not a param.
        """
        specs = self.param_specs()
        unknown = sorted(set(params) - set(specs))
        if unknown:
            raise WidgetError(
                f"{self.name} takes no param {', '.join(map(repr, unknown))}; "
                f"its params: {', '.join(sorted(specs))}"
            )
        return specs

    def _is_setting(self, name: str) -> bool:
        if name.startswith("_") or not hasattr(type(self), name):
            return False
        value = inspect.getattr_static(type(self), name)
        return not callable(value) and not isinstance(value, property | classmethod)

    # -- rendering ----------------------------------------------------------

    def render(self, **params: Any) -> Markup:
        """The widget's HTML, its resources recorded in the current collector.

        Args:
            params: values for the widget's params; ``id`` names the element.

        Returns:
            The HTML, safe to put in a Jinja2/Mako template unescaped.

        Raises:
            WidgetError: an unknown param, a bad or missing value, no template.
        """
        values = self.resolve(params)
        context = self.prepare(**values)
        collector = ResourceCollector.current()
        if collector is not None:
            for resource in self.resources_needed():
                collector.add(resource)
        html = self.render_template(context)
        return self.after_render(html, context)

    __html__ = render  # a widget put in a template as is renders with its defaults

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The values a render uses: defaults, then ``params``, each checked; a unique id.

        Raises:
            WidgetError: an unknown param, a bad value, or a required one missing.
        """
        specs = self._known(params)
        values: dict[str, Any] = {}
        for name, spec in specs.items():
            if name in params:
                values[name] = spec.check(self.name, name, params[name])
            else:
                values[name] = self._defaults.get(name, spec.default)
            if values[name] is REQUIRED:
                what = f" ({spec.doc})" if spec.doc else ""
                raise MissingParam(f"{self.name} needs the param {name!r}{what}", name, spec.doc)
        values["id"] = str(values["id"]) if values["id"] else self.new_id()
        if not _ID.fullmatch(values["id"]):
            raise WidgetError(
                f"{self.name}: id {values['id']!r} must start with a letter and hold only "
                "letters, digits, '-', '_', '.' or ':'"
            )
        values["css_class"] = " ".join(filter(None, [self.css_class, values["css_class"]]))
        return values

    def new_id(self) -> str:
        """An element id unique within the page (or, outside a collector, at random)."""
        prefix = _kebab(self.name).removesuffix("-widget") or "widget"
        collector = ResourceCollector.current()
        if collector is None:
            return f"{prefix}-{secrets.token_hex(4)}"
        return collector.new_id(prefix)

    def prepare(self, **params: Any) -> dict[str, Any]:
        """Render-time logic: the template's context from the checked params.

        Override it to compute values (call ``super().prepare(**params)`` and add
        to its result).  Runs on every render.
        """
        return dict(params)

    def resources_needed(self) -> list[Resource]:
        """The resources a page showing this widget needs."""
        return list(self.resources)

    def render_template(self, context: Mapping[str, Any]) -> Markup:
        """Render :attr:`template` or :attr:`template_file` with ``context``.

        Raises:
            WidgetError: the widget has neither.
        """
        if self.template is not None:
            return render_string(self.template, context, self)
        if self.template_file is not None:
            return render_file(self.template_path(), context, self)
        raise WidgetError(f"{self.name} has no template: set template or template_file")

    def template_path(self) -> Path:
        """:attr:`template_file`, resolved next to the module of the class that set it.

        Raises:
            WidgetError: the widget has no template file.
        """
        if self.template_file is None:
            raise WidgetError(f"{self.name} has no template_file")
        path = Path(self.template_file)
        if path.is_absolute():
            return path
        owner = next((k for k in type(self).__mro__ if "template_file" in vars(k)), type(self))
        if "template_file" in vars(self):
            owner = type(self)
        return Path(inspect.getfile(owner)).parent / path

    def after_render(self, html: Markup, context: Mapping[str, Any]) -> Markup:
        """A hook on the rendered HTML (a live widget appends its script here)."""
        return html

    def __repr__(self) -> str:
        changed = ", ".join(f"{k}={v!r}" for k, v in self._defaults.items())
        return f"{self.name}({changed})"
