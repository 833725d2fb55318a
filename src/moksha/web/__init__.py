"""Moksha on the web: middleware for any ASGI or WSGI app, and the site of ``moksha start``.

====================  ==================================================================
:mod:`.middleware`    ``MokshaMiddleware``: apps, widgets, static files, the live socket,
                      sessions, error pages, resource injection around an ASGI app
:mod:`.context`       ``web_context(request)``: the cache, guard and hub of a request
:mod:`.dispatch`      Moksha's routes first, then the wrapped app
:mod:`.widget_page`   ``/widgets/<name>``: a widget on a page of its own
:mod:`.static`        Moksha's static files, cached for an hour
:mod:`.liveclient`    ``/livesocket/moksha.js`` when the live socket is elsewhere, or nowhere
:mod:`.wsgi`          ``MokshaWSGIMiddleware``: the same around a WSGI app, as WSGI
:mod:`.embedded`      ``EmbeddedMoksha``: an ASGI app with a hub and its live socket in-process
:mod:`.app`           ``create_app(hub, config)``: the dashboard and all of the above
:mod:`.injection`     resources (JS/CSS links) put into HTML pages before ``</body>``
:mod:`.resources`     ``JSLink``, ``CSSLink``, ``STATIC_PREFIX``
:mod:`.mounts`        installed apps from entry points
:mod:`.auth`          identities and the authorization hook
:mod:`.cache`         ``Cache``: in memory, or Redis
:mod:`.errors`        error pages; exceptions logged once
:mod:`.settings`      the web keys of the configuration
====================  ==================================================================
"""

from moksha.web.app import create_app
from moksha.web.auth import ANONYMOUS, AllowList, Authorizer, Guard, Identity
from moksha.web.cache import Cache, CacheError, MemoryCache, RedisCache, cache_from_config
from moksha.web.context import WebContext, web_context
from moksha.web.embedded import EmbeddedMoksha
from moksha.web.middleware import MokshaMiddleware
from moksha.web.resources import STATIC_PREFIX, CSSLink, JSLink, Resource, render_resources
from moksha.web.settings import WebSettings
from moksha.web.wsgi import MokshaWSGIMiddleware

__all__ = [
    "ANONYMOUS",
    "STATIC_PREFIX",
    "AllowList",
    "Authorizer",
    "CSSLink",
    "Cache",
    "CacheError",
    "EmbeddedMoksha",
    "Guard",
    "Identity",
    "JSLink",
    "MemoryCache",
    "MokshaMiddleware",
    "MokshaWSGIMiddleware",
    "RedisCache",
    "Resource",
    "WebContext",
    "WebSettings",
    "cache_from_config",
    "create_app",
    "render_resources",
    "web_context",
]
