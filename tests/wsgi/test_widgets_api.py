"""``moksha.wsgi.widgets.api``: Moksha 1.x's LiveWidget as a real ToscaWidgets2 widget.

The widgets of ``tests/data/wsgi/helloworld`` are written as the original docs
show; these tests render them as Moksha renders them (``find_widget``,
``render_page``) and as tw2 does (``display()``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tw2.core as twc
from markupsafe import Markup

import moksha.wsgi.widgets.api.live as live_path
from moksha.widgets import WidgetError, find_widget, render_page
from moksha.widgets.widget import ResourceCollector
from moksha.wsgi.toscawidgets import tw2_request
from moksha.wsgi.widgets.api import LiveWidget, get_moksha_socket

JQUERY = '<script src="/_moksha/tw2/xstatic.pkg.jquery/data/jquery.min.js"></script>'
MOKSHA_JS = '<script src="/livesocket/moksha.js"></script>'


class Ticker(LiveWidget):
    topic = "stocks.*"
    topics = ["bonds.#"]
    onmessage = "$('#${id}').text(json.price); $('#${id}').data('t', topic);"
    backend = "stomp"  # the original chose Orbited's transport; ignored now
    template = '<span id="${w.id}" class="ticker"></span>'
    inline_engine_name = "mako"


def test_both_original_import_paths_give_the_same_tw2_widget() -> None:
    assert live_path.LiveWidget is LiveWidget
    assert issubclass(LiveWidget, twc.Widget)
    assert isinstance(LiveWidget, live_path.LiveWidgetMeta)


def test_display_renders_the_template_and_subscribes_with_the_id_substituted() -> None:
    with tw2_request():
        html = Ticker.display(id="acme")
    assert '<span id="acme" class="ticker"></span>' in html
    assert "$('#acme').text(json.price); $('#acme').data('t', topic);" in html
    assert "${id}" not in html
    assert '["stocks.*", "bonds.#"]' in html  # topic and topics, as the original read both


def test_prepare_and_params_work_as_in_tw2() -> None:
    class Price(LiveWidget):
        topic = "stocks.acme"
        onmessage = "$('#${id} b').text(json.price)"
        currency = twc.Param("Shown after the price", default="EUR")
        template = '<p id="${w.id}"><b>${w.shown}</b></p>'
        inline_engine_name = "mako"

        def prepare(self) -> None:
            super().prepare()
            self.shown = f"0.00 {self.currency}"

    with tw2_request():
        html = Price.display(id="p", currency="USD")
    assert '<p id="p"><b>0.00 USD</b></p>' in html


def test_the_backend_is_accepted_and_changes_nothing() -> None:
    with tw2_request():
        stomp = Ticker.display(id="a", backend="stomp")
        amqp = Ticker.display(id="a", backend="amqp")
    assert stomp == amqp


def test_a_live_widget_without_onmessage_or_topic_says_what_is_missing() -> None:
    class Silent(LiveWidget):
        topic = "x"
        template = "<p/>"
        inline_engine_name = "mako"

    class Deaf(LiveWidget):
        onmessage = "1"
        template = "<p/>"
        inline_engine_name = "mako"

    with tw2_request(), pytest.raises(WidgetError, match="onmessage"):
        Silent.display()
    with tw2_request(), pytest.raises(WidgetError, match="topic"):
        Deaf.display()


def test_a_page_of_original_widgets_links_jquery_and_the_client_once(helloworld: Path) -> None:
    page = render_page(find_widget("helloworld"), find_widget("helloworld"))
    assert page.count(JQUERY) == 1
    assert page.count(MOKSHA_JS) == 1
    assert page.index(JQUERY) < page.index("$('#hello-world-1 ul')")


def test_pages_of_new_widgets_get_no_jquery(helloworld: Path) -> None:
    page = render_page(find_widget("status"), find_widget("live").with_params(topic="x"))
    assert "jquery" not in page.lower()


def test_mako_genshi_and_inline_templates_render_by_their_prefix(helloworld: Path) -> None:
    with ResourceCollector.collecting():
        hello = find_widget("helloworld").render(id="h")
        status = find_widget("status").render(id="s", status="busy")
        inline = find_widget("inline_hello").render(id="i", greeting="Moksha")
    assert '<div id="h" class="helloworld">' in hello and "<h3>Hello World</h3>" in hello
    assert re.search(r'<span class="status-text">busy</span>', status)
    assert inline == Markup('<p id="i" class="inline-hello">inline Moksha</p>')


def test_tw2_resources_of_a_page_are_written_once(helloworld: Path) -> None:
    page = render_page(find_widget("status"), find_widget("status"))
    assert page.count('<script src="/_moksha/tw2/helloworld/static/status.js"></script>') == 1
    assert page.count("window.helloworldInline = ") == 1  # the JSSource, inline once


def test_a_tw2_widget_refuses_an_unknown_param_by_name(helloworld: Path) -> None:
    with pytest.raises(WidgetError, match="colour"):
        find_widget("status").with_params(colour="red")


def test_get_moksha_socket_puts_the_live_socket_client_on_the_page() -> None:
    socket = get_moksha_socket({"moksha.livesocket.backend": "amqp"})
    with tw2_request() as local:
        assert socket.display() == ""
        links = [getattr(r, "link", None) for r in local["resources"]]
    assert "/livesocket/moksha.js" in links
