"""Rendering widgets: params, validation, ids, resources once per page, Jinja2 and Mako."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from markupsafe import Markup

from moksha.errors import MokshaError
from moksha.web.resources import CSSLink, JSLink
from moksha.widgets import (
    FeedWidget,
    LiveWidget,
    Param,
    ResourceCollector,
    Widget,
    WidgetError,
    environment,
    find_widget,
)
from moksha.widgets.live import MOKSHA_JS

SHARED_JS = JSLink("/static/shared.js")


class Greeting(Widget):
    template = '<p id="{{ id }}" class="{{ css_class }}">Hello, {{ name }} (x{{ times }})</p>'
    params: ClassVar[dict[str, Any]] = {
        "name": "world",
        "times": Param(1, type=int, doc="how often"),
    }
    resources: ClassVar[list[Any]] = [SHARED_JS, CSSLink("/static/greeting.css")]
    css_class = "greeting"


class Shout(Greeting):
    """Render-time logic: prepare computes what the template shows."""

    def prepare(self, **params: Any) -> dict[str, Any]:
        context = super().prepare(**params)
        context["name"] = params["name"].upper() + "!" * context["times"]
        return context


class Card(Widget):
    template_file = "templates/card.html"
    params: ClassVar[dict[str, Any]] = {"title": Param(), "body": ""}


class OriginalStyle(Widget):
    """A Mako template as the original's widgets had."""

    template_file = "templates/hello.mak"
    params: ClassVar[dict[str, Any]] = {"name": "world", "count": 0, "items": (), "inner": ""}


def test_params_take_defaults_and_given_values() -> None:
    assert "Hello, world (x1)" in Greeting().render()
    assert "Hello, Moksha (x3)" in Greeting().render(name="Moksha", times="3")


def test_an_instance_may_change_defaults() -> None:
    assert "Hello, you (x1)" in Greeting(name="you").render()
    assert "Hello, me" in Greeting(name="you").render(name="me")


def test_render_returns_markup_with_the_values_escaped() -> None:
    html = Greeting().render(name="<script>alert(1)</script>")
    assert isinstance(html, Markup)
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_an_unknown_param_is_a_clear_error() -> None:
    with pytest.raises(WidgetError, match=r"Greeting takes no param 'nmae'.*name") as caught:
        Greeting().render(nmae="typo")
    assert isinstance(caught.value, MokshaError)


def test_a_value_its_param_cannot_convert_is_an_error() -> None:
    with pytest.raises(WidgetError, match="'times' must be int"):
        Greeting().render(times="often")


def test_a_required_param_must_be_given() -> None:
    with pytest.raises(WidgetError, match="needs the param 'title'"):
        Card().render()


def test_an_unknown_setting_is_an_error() -> None:
    with pytest.raises(WidgetError, match="no param or setting 'colour'"):
        Greeting(colour="red")


def test_prepare_computes_render_time_values() -> None:
    assert "Hello, BOB!! (x2)" in Shout().render(name="bob", times=2)


def test_css_classes_add_up() -> None:
    assert 'class="greeting wide"' in Greeting().render(css_class="wide")


def test_each_render_gets_its_own_id_on_a_page() -> None:
    with ResourceCollector.collecting():
        first, second = Greeting().render(), Greeting().render()
        named = Greeting().render(id="hello")
    assert 'id="greeting-1"' in first and 'id="greeting-2"' in second
    assert 'id="hello"' in named


def test_outside_a_page_ids_are_still_unique() -> None:
    ids = {Greeting().render().split('"')[1] for _ in range(20)}
    assert len(ids) == 20


def test_an_id_that_could_break_the_page_is_refused() -> None:
    with pytest.raises(WidgetError, match="id"):
        Greeting().render(id='x" onclick="evil()')


def test_three_widgets_on_a_page_link_each_resource_once() -> None:
    with ResourceCollector.collecting() as collector:
        Greeting().render()
        Shout().render()
        LiveWidget(topic="a.b", onmessage="").render()
        LiveWidget(topic="c.d", onmessage="").render()
    assert collector.resources() == [
        SHARED_JS,
        CSSLink("/static/greeting.css"),
        MOKSHA_JS,
    ]
    html = collector.html()
    assert html.count("/livesocket/moksha.js") == 1
    assert html.index("greeting.css") < html.index("shared.js")  # stylesheets first


def test_nothing_is_collected_outside_a_page() -> None:
    Greeting().render()
    assert ResourceCollector.current() is None


async def test_concurrent_requests_collect_separately() -> None:
    async def request(widget: Widget) -> list[Any]:
        with ResourceCollector.collecting() as collector:
            await asyncio.sleep(0)  # let the other request render in between
            widget.render()
            return collector.resources()

    greeting, live = await asyncio.gather(
        request(Greeting()), request(LiveWidget(topic="a", onmessage=""))
    )
    assert MOKSHA_JS not in greeting and SHARED_JS in greeting
    assert live == [MOKSHA_JS]


def test_a_jinja2_template_file_next_to_the_module() -> None:
    html = Card().render(title="News", body=Greeting().render(name="inner"))
    assert html.startswith('<section id="card-')
    assert "<h2>News</h2>" in html
    assert "<p " in html  # a rendered widget is Markup: not escaped again


def test_an_original_mako_template_renders() -> None:
    html = OriginalStyle().render(
        name="<b>Moksha</b>", count=3, items=["a", "b"], inner=Greeting().render(name="x")
    )
    assert "Hello, &lt;b&gt;Moksha&lt;/b&gt;! You are visitor 3." in html
    assert "<span>a</span>" in html and "<span>b</span>" in html
    assert '<div class="inner"><p ' in html  # Markup passes through Mako unescaped


def test_a_missing_template_file_says_which() -> None:
    with pytest.raises(WidgetError, match=r"nowhere\.html does not exist"):
        Card(template_file="nowhere.html").render(title="x")


def test_jinja2_templates_render_widgets_by_name_and_instance() -> None:
    env = environment()
    template = env.from_string(
        "{{ widget('feed', topic='org.example.#', limit=5) }}"
        "{{ widget(greeting, name='templates') }}"
        "{{ moksha_resources() }}"
    )
    with ResourceCollector.collecting():
        html = template.render(greeting=Greeting())
    assert '<moksha-feed id="feed-1"' in html and 'topic="org.example.#"' in html
    assert "Hello, templates" in html
    assert html.count('<script src="/livesocket/moksha.js"></script>') == 1


def test_a_widget_in_a_template_renders_with_its_defaults() -> None:
    html = environment().from_string("{{ w }}").render(w=Greeting(name="as is"))
    assert "Hello, as is" in html


def test_an_unknown_widget_name_lists_the_known_ones() -> None:
    with pytest.raises(WidgetError, match=r"no widget is called 'nope'.*chart.*feed"):
        find_widget("nope")


def test_builtin_names_give_widgets() -> None:
    assert isinstance(find_widget("feed"), FeedWidget)
