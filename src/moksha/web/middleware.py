"""``MokshaMiddleware``: Moksha around any ASGI app.

::

    from moksha.web import MokshaMiddleware
    app = MokshaMiddleware(my_starlette_or_fastapi_app, config)

What it adds, outermost first:

0. security headers on every response, and cross-site POST/PUT/PATCH/DELETE
   refused (:mod:`moksha.web.security`);
1. error pages (:mod:`moksha.web.errors`): a clean page in production, the
   traceback with ``moksha.debug = true``, each error logged once;
2. sessions: Starlette's signed-cookie ``SessionMiddleware`` (``request.session``),
   keyed by ``moksha.session.secret``;
3. resource injection (:mod:`moksha.web.injection`) into HTML pages;
4. Moksha's own paths, each before the wrapped app:

   =============================  ==========================================
   ``/_moksha/static/...``        Moksha's static files, cached for an hour
   ``/_moksha/tw2/...``           files of ToscaWidgets2 resources (with the ``compat``
                                  extra: :mod:`moksha.wsgi.toscawidgets`)
   ``/livesocket/...``            the live socket, when given one (``live``); else,
                                  when the config names one served elsewhere (a hub's
                                  own port, ``moksha.livesocket.url``), the JS client
                                  ``/livesocket/moksha.js`` set to connect there
   ``/apps/<name>/``              installed apps (:mod:`moksha.web.mounts`)
   ``/widgets/<name>``            a widget on a page of its own; the query
                                  string gives its params
   =============================  ==========================================

Everything else, WebSockets included, goes to the wrapped app untouched —
or, when there is none (``MokshaMiddleware(None, config)``), to the
``moksha.root`` app.  Apps and widgets pass the authorization hook
(:mod:`moksha.web.auth`) first.  Code serving a request finds the cache, the
guard and the hub with :func:`web_context`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moksha.app_db import AppDatabases
from moksha.config import Config
from moksha.errors import MokshaError
from moksha.web.auth import (
    AllowList,
    Authorizer,
    Guard,
    Identity,
    IdentitySource,
    header_identity,
    load_authorizers,
    session_identity,
)
from moksha.web.cache import Cache, cache_from_config
from moksha.web.errors import ErrorMiddleware, error_page, not_found
from moksha.web.injection import Collecting, ResourceInjector, load_global_resources
from moksha.web.mounts import APPS_PREFIX, installed_apps, installed_root
from moksha.web.resources import STATIC_PREFIX
from moksha.web.security import SecurityHeaders, page_headers
from moksha.web.settings import WebSettings

if TYPE_CHECKING:
    from moksha.hub.hub import MokshaHub
    from moksha.livesocket import LiveSocket

__all__ = [
    "LIVESOCKET_PREFIX",
    "SESSION_COOKIE",
    "MokshaMiddleware",
    "WebContext",
    "default_identity",
    "web_context",
]

log = logging.getLogger("moksha.web")

LIVESOCKET_PREFIX = "/livesocket"
SESSION_COOKIE = "moksha_session"
STATIC_CACHE_CONTROL = b"public, max-age=3600"
_CONTEXT_KEY = "moksha.web"

NO_LIVESOCKET = (
    "this page has live widgets but no live socket serves them. Run a hub in this "
    "process (moksha.web.EmbeddedMoksha for an ASGI app; for a WSGI app a "
    "CentralMokshaHub with moksha.livesocket.backend = websocket, passed as hub=), "
    "or start one (moksha start, or moksha hub with moksha.livesocket.backend = "
    "websocket) and set moksha.livesocket.url to its address."
)
"""What pages with live widgets say when the middleware knows of no live socket."""

# The client's API, doing nothing (so widgets load without errors of their own),
# and the message: in the console and at the top of the page.
_NO_LIVESOCKET_CLIENT = """(function (global) {
  var message = MESSAGE;
  var moksha = {
    state: "unavailable", transport: null, url: null,
    subscribe: function () { return function () {}; },
    unsubscribe: function () {}, send_message: function () {},
    connect: function () {}, close: function () {},
    on: function () { return moksha; }, off: function () { return moksha; },
  };
  global.moksha = moksha;
  console.error(message);
  function show() {
    var note = document.createElement("p");
    note.className = "moksha-no-livesocket";
    note.setAttribute("role", "alert");
    note.textContent = message;
    document.body.insertBefore(note, document.body.firstChild);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", show);
  else show();
})(window);
"""


@dataclass(frozen=True, slots=True)
class WebContext:
    """What Moksha's middleware offers the code serving a request.

    Attributes:
        settings: the web configuration.
        cache: the cache (memory or Redis).
        guard: identities and the authorization hook.
        hub: the hub, when the middleware was given one.
    """

    settings: WebSettings
    cache: Cache
    guard: Guard
    hub: MokshaHub | None


def web_context(connection: Scope | HTTPConnection) -> WebContext:
    """The :class:`WebContext` of a request served under :class:`MokshaMiddleware`.

    Args:
        connection: a Starlette ``Request``/``WebSocket``, or an ASGI scope.

    Raises:
        MokshaError: the request did not come through the middleware.
    """
    scope = connection.scope if isinstance(connection, HTTPConnection) else connection
    context = scope.get(_CONTEXT_KEY)
    if not isinstance(context, WebContext):
        raise MokshaError("this request did not come through MokshaMiddleware")
    return context


@functools.cache
def _process_secret() -> str:
    return secrets.token_urlsafe(32)


def default_identity(settings: WebSettings) -> IdentitySource:
    """The proxy header when ``moksha.auth.header`` is set, else the session user."""
    if settings.auth_header is None:
        return session_identity
    from_header = header_identity(settings.auth_header, settings.auth_groups_header)

    def identify(scope: Scope) -> Identity:
        identity = from_header(scope)
        return session_identity(scope) if identity.anonymous else identity

    return identify


class MokshaMiddleware:
    """Moksha's pages, apps, widgets, static files and live socket around an ASGI app.

    Args:
        app: the ASGI app answering what Moksha does not; None: the ``moksha.root``
            app, or a 404 page.
        config: a Config, a mapping of settings, or None (the config file and
            ``MOKSHA_*``; the hub's config when a hub is given).
        hub: the hub the pages are about (offered in :class:`WebContext`).
        live: a live socket to serve at ``/livesocket``, running on the event loop
            that serves this app.  A hub's own live socket (``moksha.livesocket.backend
            = websocket``) is not served again here: it runs on the hub's loop and
            port, and pages reach it there (see ``/livesocket/moksha.js`` above).
        cache: the cache to offer (default: the one ``moksha.cache.url`` describes).
        identify: the identity source (default: :func:`default_identity`).
        authorizers: authorizers besides the config's allow lists (default: the
            ``moksha.authorizer`` entry points).
        collecting: opens a per-request collector of widget resources (default:
            moksha.widgets' ``ResourceCollector.collecting``).

    Raises:
        ConfigError: a web setting is wrong, or the app's ``app_db`` cannot be opened.
    """

    def __init__(
        self,
        app: ASGIApp | None,
        config: Config | Mapping[str, Any] | None = None,
        *,
        hub: MokshaHub | None = None,
        live: LiveSocket | None = None,
        cache: Cache | None = None,
        identify: IdentitySource | None = None,
        authorizers: Sequence[Authorizer] | None = None,
        collecting: Collecting | None = None,
    ) -> None:
        if config is None and hub is not None:
            config = hub.config
        self.config = Config.coerce(config)
        self.settings = WebSettings.from_config(self.config)
        self.app = app
        self.hub = hub
        self.live = live
        self._owns_cache = cache is None
        self.cache = cache if cache is not None else cache_from_config(self.settings)
        rules: list[Authorizer] = [AllowList(self.settings.allow)]
        rules += load_authorizers() if authorizers is None else authorizers
        self.guard = Guard(
            identify or default_identity(self.settings), rules, login_url=self.settings.login_url
        )
        self.context = WebContext(self.settings, self.cache, self.guard, hub)
        # Installed apps' app_db: the hub's engines, else the middleware's own.
        self._owns_databases = hub is None
        self.databases = hub.app_databases if hub is not None else AppDatabases(self.config)
        self._warned_no_livesocket = False
        if app is not None:
            self.databases.attach(app)  # the wrapped app may declare app_db too
        self._live_stack: ASGIApp | None = None
        # Blocking clean-ups of what the site opened around the middleware (the archive's
        # database), run in a worker thread by aclose.
        self.closing: list[Callable[[], object]] = []
        self._stack = self._build(collecting if collecting is not None else _widget_collecting())

    def _build(self, collecting: Collecting | None) -> ASGIApp:
        routes: list[BaseRoute] = [
            Mount(STATIC_PREFIX, app=_CachedStatic(StaticFiles(packages=[("moksha", "static")]))),
            Route("/widgets/{name}", self._widget_page, methods=["GET"]),
        ]
        compat = _tw2_compat()
        if compat is not None:
            prefix, resources_app, with_tw2 = compat
            routes.append(Mount(prefix.rstrip("/"), app=resources_app()))
            collecting = with_tw2(collecting) if collecting is not None else None
        for installed in installed_apps():
            try:
                self.databases.attach(installed.raw)
            except Exception:
                log.exception("app %r cannot open its app_db; it is left out", installed.name)
                continue
            guarded = self.guard.protect(installed.app, "app", installed.name)
            routes.append(Mount(f"{APPS_PREFIX}/{installed.name}", app=guarded))
        fallback = self.app
        if fallback is None:
            root = installed_root()
            fallback = root.app if root is not None else not_found
        live_app = None
        if self.live is not None:
            from moksha.livesocket import livesocket_app

            live_app = livesocket_app(self.live)
        elif self.settings.livesocket_url or self.config.livesocket_backend == "websocket":
            routes.append(Route(f"{LIVESOCKET_PREFIX}/moksha.js", self._remote_client_script))
        else:
            # Live widgets would wait forever for a socket nobody serves: say so instead.
            routes.append(Route(f"{LIVESOCKET_PREFIX}/moksha.js", self._no_livesocket_script))
        dispatcher = _Dispatcher(routes, fallback, live_app)
        injector = ResourceInjector(dispatcher, load_global_resources(), collecting=collecting)
        secret = self.settings.session_secret
        if secret is None:
            log.warning(
                "moksha.session.secret is not set: sessions use a random key and will not "
                "survive a restart (set it to a long random string)"
            )
            secret = _process_secret()
        sessions = SessionMiddleware(injector, secret_key=secret, session_cookie=SESSION_COOKIE)
        errors = ErrorMiddleware(sessions, debug=self.settings.debug)
        if live_app is not None:
            # The live socket's HTTP face (publish, SSE, its script) has no page to inject
            # into and no session: skipping both keeps a publish near a bare endpoint's cost.
            live_errors = ErrorMiddleware(live_app, debug=self.settings.debug)
            self._live_stack = SecurityHeaders(live_errors, self.settings.trusted_origins)
        return SecurityHeaders(errors, self.settings.trusted_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        scope[_CONTEXT_KEY] = self.context
        if self._live_stack is not None and scope["type"] == "http":
            path = _route_path(scope)
            if path == LIVESOCKET_PREFIX or path.startswith(LIVESOCKET_PREFIX + "/"):
                await self._live_stack(scope, receive, send)
                return
        await self._stack(scope, receive, send)

    async def aclose(self) -> None:
        """Release what the middleware opened (the cache's connections)."""
        if self._owns_cache:
            await self.cache.aclose()
        if self._owns_databases:
            await asyncio.to_thread(self.databases.dispose)
        for close in self.closing:
            await asyncio.to_thread(close)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            while True:  # the server sends startup, then shutdown
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

        async def closing_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.aclose()
            await send(message)

        await self.app(scope, receive, closing_send)

    async def _remote_client_script(self, request: Request) -> Response:
        """The JS client, told to connect to the live socket another process serves.

        Pages link ``/livesocket/moksha.js`` on their own origin; when the live
        socket is a hub's own port (``moksha.livesocket.backend = websocket``, or
        ``moksha.livesocket.url``), the client still comes from here and connects there.
        """
        from moksha.livesocket import client_script

        port = self.config.livesocket_websocket_port
        hub_url = getattr(self.hub, "livesocket_url", None)
        if hub_url:  # the port the hub really listens on (the configured one may be 0)
            port = urlsplit(hub_url).port or port
        if port == 0 and not self.settings.livesocket_url:
            # Port 0 means "any free one": which one is known only once the hub started.
            return await self._no_livesocket_script(request)
        base = self.settings.livesocket_url or str(
            request.url.replace(port=port, path="", query="")
        )
        script = f"{client_script()}\nmoksha.connect({{url: {json.dumps(base.rstrip('/'))}}});\n"
        return Response(script, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    async def _no_livesocket_script(self, request: Request) -> Response:
        """The JS client's stand-in when no live socket is served: it says what to start.

        The page's live widgets cannot receive anything; rather than leave them
        silently empty, the page shows (and the console and the log say) how to
        give them a live socket.
        """
        if not self._warned_no_livesocket:
            self._warned_no_livesocket = True
            log.warning(
                "a page at %s has live widgets but no live socket: %s",
                request.url.path,
                NO_LIVESOCKET,
            )
        message = json.dumps("Moksha: " + NO_LIVESOCKET)
        script = _NO_LIVESOCKET_CLIENT.replace("MESSAGE", message)
        return Response(script, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    async def _widget_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        refusal = self.guard.refusal(request.scope, "widget", name)
        if refusal is not None:
            return refusal
        try:
            from moksha.widgets import (
                MissingParam,
                ParamRefused,
                WidgetError,
                find_widget,
                render_page,
            )
        except ImportError:
            return error_page(404, "No widgets", "moksha.widgets is not installed.")
        try:
            widget = find_widget(name)
        except WidgetError as exc:
            return error_page(404, "No such widget", str(exc))
        # The card's heading, when the link gives one, is the best name for the page.
        title = request.query_params.get("heading") or widget.standalone_title(name)
        try:
            # Params from a link: the widget refuses those only the site's code may give.
            bound = widget.for_request(dict(request.query_params), self.config)
            # Off the event loop: a widget may fetch something (a feed) to render.
            page = await asyncio.to_thread(render_page, bound, title=title)
        except ParamRefused as exc:
            return error_page(403, "Not allowed from a link", str(exc))
        except MissingParam as exc:
            given = f"{request.url.query}&" if request.url.query else ""  # as typed: %23 stays
            example = f"{request.url.path}?{given}{exc.param}=..."
            return error_page(
                400, "Bad widget parameters", f"{exc}. Pass it in the page's address: {example}"
            )
        except WidgetError as exc:
            return error_page(400, "Bad widget parameters", str(exc))
        return Response(page, media_type="text/html", headers=page_headers(request, self.config))


def _widget_collecting() -> Collecting | None:
    try:
        from moksha.widgets.widget import ResourceCollector
    except ImportError:
        return None
    return ResourceCollector.collecting


def _tw2_compat() -> tuple[str, Any, Any] | None:
    """Moksha 1.x's ToscaWidgets2 face, when the ``compat`` extra is installed.

    Returns:
        Where tw2 resources are served, the app serving them, and the wrapper
        giving each request tw2's request-local context; None without tw2.
    """
    try:
        from moksha.wsgi.toscawidgets import TW2_PREFIX, collecting_with_tw2, resources_app
    except ImportError:
        return None
    return TW2_PREFIX, resources_app, collecting_with_tw2


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    return path[len(root_path) :] if root_path and path.startswith(root_path) else path


class _Dispatcher:
    """Moksha's routes first, then the fallback app.

    Not a Starlette ``Router``: a router leaves itself in ``scope["router"]``,
    and a wrapped Starlette app would then build its URLs with our routes.
    """

    def __init__(self, routes: list[BaseRoute], fallback: ASGIApp, live: ASGIApp | None) -> None:
        self.routes = routes
        self.fallback = fallback
        self.live = live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _route_path(scope)
        if self.live is not None and (
            path == LIVESOCKET_PREFIX or path.startswith(LIVESOCKET_PREFIX + "/")
        ):
            await self.live(scope, receive, send)
            return
        partial: tuple[BaseRoute, Scope] | None = None
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial = (route, child_scope)
        if partial is not None:  # the path is ours, the method is not (a 405)
            route, child_scope = partial
            scope.update(child_scope)
            await route.handle(scope, receive, send)
            return
        if scope["type"] == "http" and self._is_mount_without_slash(scope):
            url = Request(scope).url
            await RedirectResponse(str(url.replace(path=url.path + "/")))(scope, receive, send)
            return
        await self.fallback(scope, receive, send)

    def _is_mount_without_slash(self, scope: Scope) -> bool:
        if scope["path"].endswith("/"):
            return False
        slashed = {**scope, "path": scope["path"] + "/"}
        return any(
            isinstance(route, Mount) and route.matches(slashed)[0] is Match.FULL
            for route in self.routes
        )


class _CachedStatic:
    """Static files with ``Cache-Control: public, max-age=3600`` on what they serve."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def caching_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (200, 304):
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"
                ]
                headers.append((b"cache-control", STATIC_CACHE_CONTROL))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, caching_send)
