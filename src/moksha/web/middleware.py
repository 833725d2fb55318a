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
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moksha.app_db import AppDatabases
from moksha.config import Config
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
from moksha.web.context import CONTEXT_KEY, WebContext, web_context
from moksha.web.dispatch import LIVESOCKET_PREFIX, Dispatcher, route_path
from moksha.web.errors import ErrorMiddleware, not_found
from moksha.web.injection import Collecting, ResourceInjector, load_global_resources
from moksha.web.liveclient import NO_LIVESOCKET, LiveSocketScripts
from moksha.web.mounts import APPS_PREFIX, installed_apps, installed_root
from moksha.web.resources import STATIC_PREFIX
from moksha.web.security import SecurityHeaders
from moksha.web.settings import WebSettings
from moksha.web.static import static_files
from moksha.web.widget_page import WidgetPages

if TYPE_CHECKING:
    from moksha.hub.hub import MokshaHub
    from moksha.livesocket import LiveSocket

# WebContext, web_context, LIVESOCKET_PREFIX and NO_LIVESOCKET have modules of their
# own (context, dispatch, liveclient); they stay importable from here.
__all__ = [
    "LIVESOCKET_PREFIX",
    "NO_LIVESOCKET",
    "SESSION_COOKIE",
    "MokshaMiddleware",
    "WebContext",
    "default_identity",
    "web_context",
]

log = logging.getLogger("moksha.web")

SESSION_COOKIE = "moksha_session"


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
        self._scripts = LiveSocketScripts(self.config, self.settings, hub)
        if app is not None:
            self.databases.attach(app)  # the wrapped app may declare app_db too
        self._live_stack: ASGIApp | None = None
        # Blocking clean-ups of what the site opened around the middleware (the archive's
        # database), run in a worker thread by aclose.
        self.closing: list[Callable[[], object]] = []
        self._stack = self._build(collecting if collecting is not None else _widget_collecting())

    def _build(self, collecting: Collecting | None) -> ASGIApp:
        routes: list[BaseRoute] = [
            Mount(STATIC_PREFIX, app=static_files()),
            Route("/widgets/{name}", WidgetPages(self.guard, self.config).page, methods=["GET"]),
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
            routes.append(Route(f"{LIVESOCKET_PREFIX}/moksha.js", self._scripts.remote))
        else:
            # Live widgets would wait forever for a socket nobody serves: say so instead.
            routes.append(Route(f"{LIVESOCKET_PREFIX}/moksha.js", self._scripts.missing))
        dispatcher = Dispatcher(routes, fallback, live_app)
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
        scope[CONTEXT_KEY] = self.context
        if self._live_stack is not None and scope["type"] == "http":
            path = route_path(scope)
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
