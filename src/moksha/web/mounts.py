"""Installed web apps, found on entry points, ready to mount.

=========================  =====================================================
``moksha.application``     an ASGI app (Starlette, FastAPI, Django's ASGI ...),
                           served at ``/apps/<name>/``
``moksha.wsgiapp``         a WSGI app (Flask, Pyramid, Django's WSGI ...), served
                           at ``/apps/<name>/`` through a2wsgi
``moksha.root``            the app answering ``/`` and whatever nothing else does
=========================  =====================================================

An entry names the app itself, or a factory taking no arguments (a function,
or a class whose instances are apps).  Mounted apps see the usual ASGI/WSGI
mount conventions: ``root_path`` / ``SCRIPT_NAME`` is ``/apps/<name>``, so
URLs they build point back under it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from a2wsgi import WSGIMiddleware
from starlette.types import ASGIApp

from moksha.plugins import iter_plugins

__all__ = ["APPS_PREFIX", "InstalledApp", "installed_apps", "installed_root"]

log = logging.getLogger("moksha.web")

APPS_PREFIX = "/apps"
ASGI_GROUP = "moksha.application"
WSGI_GROUP = "moksha.wsgiapp"
ROOT_GROUP = "moksha.root"


@dataclass(frozen=True, slots=True)
class InstalledApp:
    """An app from an entry point.

    Attributes:
        name: the entry point's name (its URL is ``/apps/<name>/``).
        app: the app as ASGI (a WSGI app comes wrapped by a2wsgi).
        value: what the entry point references, for messages.
        wsgi: whether it is a WSGI app.
        raw: the app object itself (before WSGI wrapping), whose ``app_db``
            the middleware honours (see :mod:`moksha.app_db`).
    """

    name: str
    app: ASGIApp
    value: str
    wsgi: bool = False
    raw: Any = None


def _is_factory(obj: Any) -> bool:
    """A function or class to call with no arguments (not an app object itself)."""
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        return False
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in signature.parameters.values()
    )


def _resolve(obj: Any) -> Any:
    app = obj() if _is_factory(obj) else obj
    if not callable(app):
        raise TypeError(f"{app!r} is not an ASGI/WSGI app")
    return app


def _load(groups: Iterable[str]) -> list[InstalledApp]:
    found: dict[str, InstalledApp] = {}
    for plugin in iter_plugins(groups):
        if plugin.error:
            log.error("cannot load app %r (%s): %s", plugin.name, plugin.value, plugin.error)
            continue
        if plugin.name in found:
            log.error("two apps are called %r; %s is left out", plugin.name, plugin.value)
            continue
        try:
            app = _resolve(plugin.obj)
        except Exception as exc:
            log.error("cannot make app %r (%s): %s", plugin.name, plugin.value, exc)
            continue
        wsgi = plugin.group == WSGI_GROUP
        asgi: ASGIApp = WSGIMiddleware(app) if wsgi else app  # type: ignore[assignment]
        found[plugin.name] = InstalledApp(plugin.name, asgi, plugin.value, wsgi, raw=app)
    return list(found.values())


def installed_apps() -> list[InstalledApp]:
    """The ``moksha.application`` and ``moksha.wsgiapp`` apps; failures logged and left out.

    Returns:
        The apps, each name once (the first entry of a name wins).
    """
    return _load([ASGI_GROUP, WSGI_GROUP])


def installed_root() -> InstalledApp | None:
    """The ``moksha.root`` app, if one is installed (the first, when several are)."""
    apps = _load([ROOT_GROUP])
    if len(apps) > 1:
        log.warning("several moksha.root apps are installed; %s is used", apps[0].value)
    return apps[0] if apps else None
