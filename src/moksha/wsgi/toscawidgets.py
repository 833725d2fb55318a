"""ToscaWidgets2 inside Moksha: tw2's request-local context, its resources, its widgets.

tw2 keeps what one request renders (the resources its widgets need, the
middleware's settings) in ``tw2.core.core.request_local()``, a per-thread
dict that its own ``TwMiddleware`` clears around each request.  Moksha serves
requests on an event loop and in a2wsgi's threads, so per-thread is wrong
here: :func:`install` points tw2's hook (the one TurboGears also replaces)
at a context variable, and :func:`tw2_request` opens a fresh dict per
request, which follows the request through ``await`` and into the WSGI
thread (a2wsgi runs it with a copy of the context, holding the same dict).

A tw2 widget registered on the ``moksha.widget`` entry point is shown by
:func:`adapt`: a :class:`moksha.widgets.Widget` that renders it with
``display()`` and hands the links its resources need (``JSLink``,
``CSSLink``) to Moksha's per-page collector, so each is written once per
page; a ``JSSource`` is written inline after the first widget needing it.
Files of ``JSLink(modname=..., filename=...)`` are served under
:data:`TW2_PREFIX` by tw2's own ``ResourcesApp`` (:func:`resources_app`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import tw2.core as twc
import tw2.core.core
import tw2.core.middleware
from a2wsgi import WSGIMiddleware
from markupsafe import Markup
from starlette.types import ASGIApp, Receive, Scope, Send

from moksha.web.resources import CSSLink, JSLink, Resource
from moksha.web.security import csp_nonce
from moksha.widgets.widget import Param, ResourceCollector, Widget, WidgetError

__all__ = [
    "TW2_PREFIX",
    "TW2Widget",
    "adapt",
    "install",
    "is_tw2_widget",
    "page_resources",
    "resources_app",
    "tw2_request",
]

TW2_PREFIX = "/_moksha/tw2/"
"""Where the files of tw2 resources (``modname`` + ``filename``) are served."""

_request: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "moksha_tw2_request", default=None
)


@functools.cache
def tw2_middleware() -> tw2.core.middleware.TwMiddleware:
    """The one tw2 middleware whose settings and resource registry every request shares.

    It never wraps an app: Moksha's own middleware injects the resources
    (``inject_resources=False``) and serves their files (:func:`resources_app`).
    """
    install()
    # tw2 records itself in the request-local dict it is built in: a scratch one here.
    token = _request.set({"middleware": None})
    try:
        # params_as_vars: templates written for Moksha 1.x say ${id} as often as ${w.id}.
        return tw2.core.middleware.TwMiddleware(
            None, res_prefix=TW2_PREFIX, inject_resources=False, params_as_vars=True
        )
    finally:
        _request.reset(token)


def _request_local() -> dict[str, Any]:
    """tw2's ``request_local()``: the dict of the request or page being rendered.

    Outside both (a widget class defined at import, ``display()`` in a script), a
    throw-away dict: nothing done there may pile up in the caller's context.
    """
    local = _request.get()
    if local is None:
        return {"middleware": tw2_middleware()}
    if "middleware" not in local:
        local["middleware"] = tw2_middleware()
    return local


def install() -> None:
    """Point tw2's request-local hook at Moksha's context variable (idempotent)."""
    tw2.core.core.request_local = _request_local


@contextlib.contextmanager
def tw2_request() -> Iterator[dict[str, Any]]:
    """A fresh tw2 request-local dict for the code run inside (one request, one page).

    Yields:
        The dict; its ``"resources"`` are those of the tw2 widgets displayed so far.
    """
    install()
    token = _request.set({"middleware": tw2_middleware()})
    try:
        yield _request_local()
    finally:
        _request.reset(token)


# A page rendered outside a request (render_page in a script): one tw2 dict per page.
_pages: weakref.WeakKeyDictionary[ResourceCollector, dict[str, Any]] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def _page_request() -> Iterator[dict[str, Any]]:
    """The tw2 request-local dict of the request or page being rendered (a new one if neither)."""
    local = _request.get()
    collector = ResourceCollector.current()
    if local is None and collector is not None:
        local = _pages.setdefault(collector, {"middleware": tw2_middleware()})
    if local is None:
        with tw2_request() as fresh:
            yield fresh
        return
    token = _request.set(local)
    try:
        yield local
    finally:
        _request.reset(token)


def _moksha_resource(resource: Any) -> Resource | None:
    """The Moksha link for a prepared tw2 resource; None for inline code and others.

    A link to a package's file is registered for serving here, whenever it was
    defined: tw2 registers at class definition only with its middleware in place,
    which a package imported before Moksha's did not have.
    """
    filename = getattr(resource, "filename", None)
    if isinstance(resource, twc.Link) and isinstance(filename, str) and not resource.no_inject:
        modname = resource.modname or "__anon__"
        tw2_middleware().resources.register(modname, filename, bool(resource.whole_dir))
    if isinstance(resource, twc.CSSLink) and resource.link:
        return CSSLink(str(resource.link))
    if isinstance(resource, twc.JSLink) and resource.link:
        return JSLink(str(resource.link))
    return None


def page_resources(local: Mapping[str, Any]) -> list[Resource]:
    """The links tw2 widgets displayed in the request ``local`` need, in tw2's order."""
    found = (_moksha_resource(r) for r in local.get("resources", []))
    return list(dict.fromkeys(r for r in found if r is not None))


def _inline_sources(resources: list[Any]) -> Markup:
    """``<script>`` elements for tw2 ``JSSource`` resources, with the page's CSP nonce."""
    nonce = csp_nonce()
    attribute = f' nonce="{nonce}"' if nonce else ""
    # "</script" inside the code would end the element early.
    codes = [str(r.src).replace("</", "<\\/") for r in resources if isinstance(r, twc.JSSource)]
    scripts = [Markup(f"<script{attribute}>\n{code}\n</script>") for code in codes if code]
    return Markup("\n").join(scripts)


def is_tw2_widget(obj: object) -> bool:
    """Whether ``obj`` is a ToscaWidgets2 widget class or instance."""
    return isinstance(obj, twc.Widget) or (isinstance(obj, type) and issubclass(obj, twc.Widget))


class TW2Widget(Widget):
    """A ToscaWidgets2 widget shown as a Moksha widget (see :func:`adapt`).

    Its params are the tw2 widget's; rendering calls its ``display()``, so its
    ``prepare()``, template engine (``mako:``, ``genshi:``, ``jinja:``, inline)
    and resources work as under tw2's own middleware.
    """

    tw2_widget: Any = None
    # Not params of a page: code, templates, and tw2's own plumbing (``onmessage`` in a
    # link would be script anyone could make the site's page run).
    hidden_params = frozenset(
        {
            "template",
            "inline_engine_name",
            "resources",
            "onmessage",
            "attrs",
            "validator",
            "parent",
            "key",
            "error_msg",
            "children",
            "c",
            "css_class",
        }
    )

    @classmethod
    def param_specs(cls) -> dict[str, Param]:
        """The tw2 widget's public params (with their defaults), ``id`` and ``css_class``."""
        specs = super().param_specs()
        for name in getattr(cls.tw2_widget, "_all_params", {}):
            if name.startswith("_") or name in cls.hidden_params:
                continue
            default = getattr(cls.tw2_widget, name, None)
            specs.setdefault(name, Param(None if default is twc.Required else default))
        return specs

    @property
    def name(self) -> str:
        return str(getattr(self.tw2_widget, "__name__", type(self).__name__))

    def render(self, **params: Any) -> Markup:
        """The tw2 widget's HTML; its links go to the page's collector.

        Raises:
            WidgetError: a param it does not take, or the tw2 widget failed to render.
        """
        # Checked as every widget's params are: known names, an id safe in selectors and code.
        resolved = self.resolve(params)
        values = {k: v for k, v in resolved.items() if v is not None and k != "css_class"}
        with _page_request() as current:
            before = len(current.get("resources", []))
            try:
                html = Markup(self.tw2_widget.display(**values))
            except (twc.WidgetError, ValueError, TypeError, LookupError, AttributeError) as exc:
                raise WidgetError(f"{self.name} cannot render: {exc}") from exc
            new = current.get("resources", [])[before:]
        collector = ResourceCollector.current()
        if collector is not None:
            for resource in page_resources({"resources": new}):
                collector.add(resource)
        return html + _inline_sources(new)

    __html__ = render


@functools.cache
def adapt(widget: Any) -> type[TW2Widget]:
    """A Moksha widget class showing the tw2 widget (class or instance) ``widget``.

    Raises:
        WidgetError: ``widget`` is not a tw2 widget.
    """
    if not is_tw2_widget(widget):
        raise WidgetError(f"{widget!r} is not a ToscaWidgets2 widget")
    tw2_class = widget if isinstance(widget, type) else type(widget)
    title = getattr(tw2_class, "page_title", None)
    return type(tw2_class.__name__, (TW2Widget,), {"tw2_widget": tw2_class, "page_title": title})


def resources_app() -> ASGIApp:
    """An ASGI app serving the files tw2 resources registered (mount it at :data:`TW2_PREFIX`).

    tw2's ``ResourcesApp`` serves only files some displayed widget registered,
    and refuses ``..`` in paths.
    """
    wsgi = WSGIMiddleware(tw2_middleware().resources)

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        # tw2 reads the full path (prefix included) from PATH_INFO.
        await wsgi({**scope, "root_path": ""}, receive, send)  # type: ignore[arg-type]

    return serve


def collecting_with_tw2(
    collecting: Callable[[], contextlib.AbstractContextManager[Any]],
) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """``collecting`` (Moksha's per-request collector) with a tw2 request opened beside it.

    The collector it yields also lists the links of tw2 widgets an app's own
    view displayed itself (``MyWidget.display()`` in a TurboGears or Flask view).
    """

    @contextlib.contextmanager
    def both() -> Iterator[Any]:
        with tw2_request() as local, collecting() as collector:
            yield _Both(collector, local)

    return both


class _Both:
    def __init__(self, collector: Any, local: dict[str, Any]) -> None:
        self._collector = collector
        self._local = local

    def resources(self) -> list[Resource]:
        mine: list[Resource] = list(self._collector.resources())
        return list(dict.fromkeys([*mine, *page_resources(self._local)]))
