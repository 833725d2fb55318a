"""An installed web plugin for the tests: apps, a widget, global resources, an authorizer.

Its ``dist-info`` declares them on Moksha's entry points, so the middleware
finds them exactly as it finds those of a package installed with pip.
"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from moksha.web.resources import CSSLink, JSLink
from moksha.widgets import Widget

SITE_JS = JSLink("/_moksha/static/site.js")


def theme():
    """A ``moksha.global`` entry may be a callable returning resources."""
    return [CSSLink("/theme.css")]


class Greeting(Widget):
    template = '<p id="{{ id }}" class="greeting">Hello, {{ name }}!</p>'
    params = {"name": "world"}
    resources = [CSSLink("/greeting.css"), JSLink("/greeting.js")]


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(f"<html><body><h1>{request.url.path}</h1></body></html>")


async def where(request: Request) -> JSONResponse:
    return JSONResponse({"root_path": request.scope.get("root_path"), "path": request.url.path})


async def boom(request: Request) -> HTMLResponse:
    raise RuntimeError("the app failed")


def make_asgi_app() -> Starlette:
    """A ``moksha.application`` entry may be a factory taking no arguments."""
    return Starlette(routes=[Route("/", page), Route("/where", where), Route("/boom", boom)])


asgi_app = make_asgi_app()


def wsgi_app(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("the WSGI app failed")
    body = (
        f"<html><body><p>{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}</p>"
        f"{Greeting().render(name='wsgi')}</body></html>"
    ).encode()
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
    return [body]


def only_boss_sees_secret(identity, kind, name):
    """An authorizer: the app called ``secret`` is for the user ``boss`` alone."""
    return not (kind == "app" and name == "secret") or identity.user == "boss"
