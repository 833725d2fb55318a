"""Live widgets and the built-in widgets' HTML: what a page gets before any browser runs it."""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

import pytest

from moksha.widgets import (
    ChartWidget,
    FeedWidget,
    Grid,
    GridItem,
    HubStatusWidget,
    InspectorWidget,
    LiveWidget,
    ResourceCollector,
    WidgetError,
)
from moksha.widgets.live import MOKSHA_JS, WIDGETS_CSS, WIDGETS_JS


class HelloWorldWidget(LiveWidget):
    """Written as for the original Moksha."""

    topic = "helloworld"
    onmessage = "document.getElementById('${id}').append(json.msg)"
    template = '<div id="{{ id }}"></div>'


def subscribed_topics(html: str) -> list[str]:
    """The patterns the widget's script subscribes to."""
    match = re.search(r"(\[.*?\])\.forEach", html)
    assert match, html
    topics: list[str] = json.loads(match.group(1))
    return topics


def test_a_live_widget_subscribes_its_element_to_its_topic() -> None:
    html = LiveWidget(topic="org.example.#", onmessage="this.textContent = json.text").render(
        id="news"
    )
    assert html.startswith('<div id="news" class="moksha-live"></div><script>')
    assert subscribed_topics(html) == ["org.example.#"]
    assert "this.textContent = json.text" in html
    assert 'document.getElementById("news")' in html
    # The handler gets the body as `json`, plus the topic and the whole message.
    assert "function onmessage(json, topic, message)" in html
    assert "onmessage.call(el, m.body, m.topic, m)" in html


def test_an_original_live_widget_class_renders_with_its_id_in_the_code() -> None:
    html = HelloWorldWidget().render(id="hello")
    assert "document.getElementById('hello').append(json.msg)" in html
    assert subscribed_topics(html) == ["helloworld"]


def test_topic_and_onmessage_may_be_given_at_render_time() -> None:
    html = HelloWorldWidget().render(topic=["a.*", "b.#"], onmessage="console.log(json)")
    assert subscribed_topics(html) == ["a.*", "b.#"]
    assert "console.log(json)" in html and "append(json.msg)" not in html


def test_code_cannot_close_the_script_early() -> None:
    html = LiveWidget(topic="t", onmessage="x = '</script><img src=x>'").render()
    assert html.count("</script>") == 1


def test_a_live_widget_needs_a_topic() -> None:
    with pytest.raises(WidgetError, match="needs a topic"):
        LiveWidget(onmessage="x").render()


def test_a_live_widget_needs_the_client_on_its_page() -> None:
    with ResourceCollector.collecting() as collector:
        HelloWorldWidget().render()
    assert collector.resources() == [MOKSHA_JS]


def test_the_feed_renders_its_element_with_its_params() -> None:
    html = FeedWidget(topic="org.example.#").render(id="news", limit="5", heading="News & more")
    assert html == (
        '<moksha-feed id="news" topic="org.example.#" limit="5" heading="News &amp; more">'
        "</moksha-feed>"
    )


def test_the_chart_takes_fields_as_a_list_or_text() -> None:
    html = ChartWidget(topic="t").render(fields=["load1", " load5 "], unit="%", max=100)
    assert 'fields="load1,load5"' in html and 'unit="%"' in html and 'max="100.0"' in html
    assert "labels=" not in html  # params left at None are not written


@pytest.mark.parametrize(
    ("widget", "params", "message"),
    [
        (ChartWidget(topic="t"), {}, "needs the param 'fields'"),
        (ChartWidget(topic="t"), {"fields": " , "}, "'fields' must be name_list"),
        (FeedWidget(), {"limit": 0}, "'limit' must be positive_int"),
        (HubStatusWidget(), {"interval": "never"}, "'interval' must be positive_float"),
    ],
)
def test_builtin_params_are_checked(widget: Any, params: dict[str, Any], message: str) -> None:
    with pytest.raises(WidgetError, match=message):
        widget.render(**params)


def test_builtin_widgets_need_the_client_and_the_components() -> None:
    with ResourceCollector.collecting() as collector:
        FeedWidget().render()
        InspectorWidget().render()
        HubStatusWidget().render()
    assert collector.resources() == [WIDGETS_CSS, MOKSHA_JS, WIDGETS_JS]


class Panel(LiveWidget):
    topic = "panel"
    params: ClassVar[dict[str, Any]] = {"label": "Panel"}
    template = '<div id="{{ id }}">{{ label }}</div>'


def test_a_grid_renders_its_children_in_cells_with_spans() -> None:
    grid = Grid(columns=2, children=[GridItem(FeedWidget(), span=3), Panel()])
    with ResourceCollector.collecting() as collector:
        html = grid.render()
    assert html.startswith(
        '<moksha-grid id="grid-1" class="moksha-grid" style="--moksha-columns: 2">'
    )
    cells = re.findall(r'<div class="moksha-cell" style="--moksha-span: (\d+)">', html)
    assert cells == ["2", "1"]  # a span wider than the grid is cut to its width
    assert "<moksha-feed" in html and ">Panel</div>" in html
    assert MOKSHA_JS in collector.resources()


def test_grid_items_take_params() -> None:
    html = Grid(children=[GridItem(Panel(), params={"label": "Mine"})]).render()
    assert ">Mine</div>" in html


def test_a_grid_cell_must_hold_a_widget() -> None:
    with pytest.raises(WidgetError, match="holds a Widget"):
        GridItem("feed")  # type: ignore[arg-type]
    with pytest.raises(WidgetError, match="at least one column"):
        GridItem(FeedWidget(), span=0)
