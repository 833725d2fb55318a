"""What Moksha's middleware offers the code serving a request, and how that code finds it.

:class:`~moksha.web.MokshaMiddleware` puts one :class:`WebContext` in every
request's scope; an app, a widget or a route under it calls
:func:`web_context` for the cache, the guard and the hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection
from starlette.types import Scope

from moksha.errors import MokshaError
from moksha.web.auth import Guard
from moksha.web.cache import Cache
from moksha.web.settings import WebSettings

if TYPE_CHECKING:
    from moksha.hub.hub import MokshaHub

__all__ = ["CONTEXT_KEY", "WebContext", "web_context"]

CONTEXT_KEY = "moksha.web"
"""The scope key the middleware sets to the request's :class:`WebContext`."""


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
    """The :class:`WebContext` of a request served under :class:`~moksha.web.MokshaMiddleware`.

    Args:
        connection: a Starlette ``Request``/``WebSocket``, or an ASGI scope.

    Raises:
        MokshaError: the request did not come through the middleware.
    """
    scope = connection.scope if isinstance(connection, HTTPConnection) else connection
    context = scope.get(CONTEXT_KEY)
    if not isinstance(context, WebContext):
        raise MokshaError("this request did not come through MokshaMiddleware")
    return context
