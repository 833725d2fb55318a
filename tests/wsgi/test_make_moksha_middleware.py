"""``make_moksha_middleware``: a Moksha 1.x WSGI app (here Flask) wrapped as the tutorials show."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import flask
import httpx
import pytest

from moksha.wsgi.middleware import make_moksha_middleware

JQUERY = '<script src="/_moksha/tw2/xstatic.pkg.jquery/data/jquery.min.js"></script>'


def flask_app() -> flask.Flask:
    from helloworld.widgets import HelloWorldWidget, StatusWidget

    app = flask.Flask("moksha1_app")

    @app.route("/")
    def index() -> str:
        # As a TurboGears 2 controller did: the view displays tw2 widgets itself.
        return f"<html><body>{HelloWorldWidget.display(id='hello')}</body></html>"

    @app.route("/quiet")
    def quiet() -> str:
        return f"<html><body>{StatusWidget.display(id='st')}</body></html>"

    return app


@pytest.fixture
def client(helloworld: Path) -> Iterator[httpx.Client]:
    app = flask_app()
    config = {
        "moksha.livesocket.backend": "stomp",  # an original setting: Orbited's STOMP
        "moksha.extensionpoints": True,
        "full_stack": True,  # a TurboGears key Moksha does not know
    }
    wrapped = make_moksha_middleware(app.wsgi_app, config)
    try:
        transport = httpx.WSGITransport(app=wrapped)
        with httpx.Client(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        wrapped.close()


def test_a_page_displaying_a_live_widget_gets_jquery_and_the_client(client: httpx.Client) -> None:
    page = client.get("/").text
    assert page.count(JQUERY) == 1
    assert page.count('<script src="/livesocket/moksha.js"></script>') == 1
    assert "$('#hello ul').prepend" in page


def test_each_request_has_its_own_tw2_resources(client: httpx.Client) -> None:
    client.get("/")
    quiet = client.get("/quiet").text
    assert JQUERY not in quiet
    assert '<script src="/_moksha/tw2/helloworld/static/status.js"></script>' in quiet


def test_the_resources_it_links_are_served(client: httpx.Client) -> None:
    client.get("/")
    jquery = client.get("/_moksha/tw2/xstatic.pkg.jquery/data/jquery.min.js")
    assert jquery.status_code == 200
    assert "jQuery" in jquery.text[:500]


def test_an_original_stomp_socket_setting_serves_the_live_socket_client(
    client: httpx.Client,
) -> None:
    script = client.get("/livesocket/moksha.js")
    assert script.status_code == 200
    assert "moksha.connect" in script.text
