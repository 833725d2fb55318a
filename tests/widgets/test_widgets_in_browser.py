"""The widgets in a real browser (Chromium): what a person sees on the dashboard and test pages.

A :class:`~conftest.Site` serves the dashboard, the live socket and the static
files on one origin, around a hub on the memory bus; the test publishes and
waits (bounded, ``PAGE_TIMEOUT_MS``) for the page to show it.  Screenshots go to
``artifacts/screenshots``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from moksha.hub.api import Consumer
from moksha.widgets import ChartWidget, FeedWidget, InspectorWidget, LiveWidget, render_page

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from conftest import ConsoleErrors, StartSite

# Looked at by people (git-ignored): what the dashboard looks like on a laptop and a phone.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

# The default dashboard follows three patterns: moksha.demo.system (three charts share
# it), moksha.demo.# (the feed) and # (the inspector).
DASHBOARD_PATTERNS = 3


class Thermometer(Consumer):
    topic = "sensors.#"

    def consume(self, message: object) -> None:
        pass


def system(n: int) -> dict[str, float]:
    """A ``moksha.demo.system``-like body."""
    return {
        "load1": 0.5 + n / 10,
        "load5": 0.4,
        "load15": 0.3,
        "memory_used_percent": 40.0 + n,
        "net_rx_bytes_per_s": 1000.0 * n,
        "net_tx_bytes_per_s": 500.0,
    }


# A page written by hand, no Python involved: the two script tags the components need.
STANDALONE = """<!doctype html>
<html><head><title>Plain page</title><link rel="icon" href="data:,"></head><body>
<moksha-live topic="chat.#" onmessage="this.textContent = json.text + ' (' + topic + ')'">
</moksha-live>
<moksha-feed topic="chat.#" limit="5"></moksha-feed>
<script src="/livesocket/moksha.js"></script>
<script type="module" src="/_moksha/static/widgets/moksha-widgets.js"></script>
</body></html>"""


class ChatLine(LiveWidget):
    """An original-style live widget: ``${id}`` in its code, ``json`` the body."""

    topic = "chat.#"
    onmessage = "document.getElementById('${id}').textContent = json.text"
    template = '<p id="{{ id }}" class="chat-line">waiting</p>'


def open_dashboard(page: Page, url: str) -> None:
    page.goto(url + "/")
    page.locator("moksha-connection[data-state=open]").wait_for()


def test_the_dashboard_loads_live_without_console_errors(
    start_site: StartSite, page: Page, console_errors: ConsoleErrors
) -> None:
    site = start_site(consumers=[Thermometer])
    open_dashboard(page, site.url)
    site.wait_for_subscriptions(DASHBOARD_PATTERNS)
    for n in range(3):
        site.send("moksha.demo.system", system(n))
    page.locator("moksha-chart polyline[data-field=load1]").wait_for()
    page.locator("moksha-hub-status tr[data-name=Thermometer]").wait_for()
    assert page.locator("moksha-connection").inner_text() == "live"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "widgets-dashboard.png"), full_page=True)
    assert console_errors == []


def test_the_chart_draws_a_point_per_message(start_site: StartSite, page: Page) -> None:
    site = start_site()
    open_dashboard(page, site.url)
    site.wait_for_subscriptions(DASHBOARD_PATTERNS)
    load = page.locator("moksha-chart[fields^=load1]")
    for n in range(5):
        site.send("moksha.demo.system", system(n))
    page.wait_for_function(
        """() => document.querySelector('moksha-chart[fields^=load1] polyline[data-field=load1]')
                   ?.getAttribute('points').split(' ').length === 5"""
    )
    # One line per field, each with its legend and latest value.
    assert load.locator("polyline").count() == 3
    assert load.locator(".moksha-legend li").all_inner_texts() == [
        "1 min\n0.9",
        "5 min\n0.4",
        "15 min\n0.3",
    ]
    # The newest point of load1 (0.9) is the highest: its y is the smallest of the line.
    points = load.locator("polyline[data-field=load1]").get_attribute("points") or ""
    ys = [float(point.split(",")[1]) for point in points.split()]
    assert ys == sorted(ys, reverse=True) and ys[0] > ys[-1]
    network = page.locator("moksha-chart[fields^=net_rx]")
    assert "4 kB/s" in network.locator(".moksha-legend").inner_text()


def test_the_chart_keeps_its_newest_points(start_site: StartSite, page: Page) -> None:
    site = start_site()
    chart = ChartWidget(topic="sensors.#", fields="room.celsius", points=3)
    site.pages["chart"] = render_page(chart, title="Chart")
    page.goto(site.url + "/test/chart")
    site.wait_for_subscriptions(1)
    for celsius in (10, 20, 30, 40, 50):
        site.send("sensors.kitchen", {"room": {"celsius": celsius}})
    page.locator(".moksha-legend-value", has_text="50").wait_for()
    points = page.locator("polyline[data-field='room.celsius']").get_attribute("points") or ""
    assert len(points.split()) == 3
    # The axis fits the three values kept (30 to 50), not the dropped ones.
    labels = page.locator(".moksha-axis-label").all_text_contents()
    assert "30" in labels and "50" in labels and "10" not in labels


def test_the_feed_shows_the_newest_first_and_stays_bounded(
    start_site: StartSite, page: Page
) -> None:
    site = start_site()
    site.pages["feed"] = render_page(FeedWidget(topic="news.#", limit=3), title="Feed")
    page.goto(site.url + "/test/feed")
    site.wait_for_subscriptions(1)
    site.send(
        "news.tech", {"title": "First", "link": "https://example.org/1", "summary": "<b>1</b>"}
    )
    for n in range(2, 6):
        site.send("news.tech", {"n": n})
    page.wait_for_function(
        "() => document.querySelector('moksha-feed li')?.textContent.includes('{\"n\":5}')"
    )
    entries = page.locator("moksha-feed li")
    assert entries.count() == 3
    assert [text.splitlines()[0] for text in entries.all_inner_texts()] == [
        '{"n":5}',
        '{"n":4}',
        '{"n":3}',
    ]
    assert page.locator("moksha-feed .moksha-meta").inner_text() == "5 received"


def test_a_feed_entry_shows_as_a_link_and_text(start_site: StartSite, page: Page) -> None:
    site = start_site()
    site.pages["feed"] = render_page(FeedWidget(topic="news.#"), title="Feed")
    page.goto(site.url + "/test/feed")
    site.wait_for_subscriptions(1)
    site.send(
        "news.tech", {"title": "Hello", "link": "https://example.org/1", "summary": "<b>Hi</b>"}
    )
    site.send("news.bad", {"title": "Trap", "link": "javascript:alert(1)"})
    page.locator("moksha-feed li", has_text="Trap").wait_for()
    link = page.locator("moksha-feed a", has_text="Hello")
    assert link.get_attribute("href") == "https://example.org/1"
    assert page.locator("moksha-feed .moksha-entry-summary").inner_text() == "Hi"
    assert page.locator("moksha-feed a", has_text="Trap").count() == 0  # no javascript: link


def test_the_inspector_pauses_filters_and_tails_another_pattern(
    start_site: StartSite, page: Page
) -> None:
    protected = {
        "moksha.livesocket.protected": "secret.#",
        "moksha.livesocket.token_secret": "k" * 32,
    }
    site = start_site(protected)
    site.pages["inspector"] = render_page(InspectorWidget(pattern="a.#"), title="Inspector")
    page.goto(site.url + "/test/inspector")
    site.wait_for_subscriptions(1)
    inspector = page.locator("moksha-inspector")
    entries = inspector.locator("li")

    site.send("a.one", {"value": 1})
    site.send("a.two", {"value": 2})
    entries.nth(1).wait_for()
    assert entries.first.locator(".moksha-topic").inner_text() == "a.two"
    entries.first.locator("summary").click()
    assert '"value": 2' in entries.first.locator("pre").inner_text()  # pretty JSON

    inspector.get_by_role("button", name="Pause").click()
    site.send("a.three", {"value": 3})
    inspector.get_by_role("button", name="Resume (1 new)").wait_for()
    assert entries.count() == 2
    inspector.get_by_role("button", name="Resume (1 new)").click()
    # A message is still open: what came waits, and says so, until it is shown.
    site.send("a.four", {"value": 4})
    inspector.get_by_role("button", name="2 new messages: show").click()
    page.locator("moksha-inspector li[data-topic='a.four']").wait_for()
    assert inspector.locator(".moksha-topic").all_inner_texts() == [
        "a.four",
        "a.three",
        "a.two",
        "a.one",
    ]

    inspector.get_by_label("Filter messages").fill("two")
    shown = inspector.locator("li:visible .moksha-topic")
    assert shown.all_inner_texts() == ["a.two"]
    inspector.get_by_label("Filter messages").fill("")

    inspector.get_by_label("Topic pattern").fill("b.*")
    inspector.get_by_role("button", name="Tail").click()
    site.wait_for_subscriptions(1)
    page.wait_for_function("() => !document.querySelector('moksha-inspector li')")
    site.send("a.five", {"value": 5})
    site.send("b.one", {"value": 6})
    page.locator("moksha-inspector li[data-topic='b.one']").wait_for()
    assert entries.count() == 1
    assert "msg/s" in inspector.locator(".moksha-meta").inner_text()

    inspector.get_by_label("Topic pattern").fill("secret.#")
    inspector.get_by_role("button", name="Tail").click()
    refusal = inspector.get_by_role("alert")
    refusal.wait_for()
    assert refusal.inner_text().startswith("the hub refused secret.#: cannot subscribe")


def test_the_hub_status_shows_consumers_producers_and_clients(
    start_site: StartSite, page: Page
) -> None:
    site = start_site(consumers=[Thermometer])
    open_dashboard(page, site.url)
    site.wait_for_subscriptions(DASHBOARD_PATTERNS)
    for n in range(4):
        site.send("sensors.kitchen", n)
    row = page.locator("moksha-hub-status tr[data-name=Thermometer]")
    page.wait_for_function(
        """() => document.querySelector('moksha-hub-status tr[data-name=Thermometer] td')
                   ?.textContent === '4'""",
        timeout=6000,  # the panel refreshes every 2 s
    )
    assert "sensors.#" in row.inner_text()
    status = page.locator("moksha-hub-status")
    headers = status.locator("thead th").all_inner_texts()
    assert "Queued" in headers  # the broker queue's depth; the memory bus has none
    assert row.locator("td").nth(4).inner_text() == "\N{EN DASH}"
    assert "memory: connected" in status.locator(".moksha-backends").inner_text()
    assert "1 client (1 WebSocket, 0 SSE)" in status.inner_text()


def test_a_phone_sees_one_column(start_site: StartSite, page: Page) -> None:
    site = start_site()
    page.set_viewport_size({"width": 375, "height": 800})
    open_dashboard(page, site.url)
    cells = page.locator("moksha-grid > .moksha-cell")
    boxes = [cells.nth(i).bounding_box() for i in range(cells.count())]
    assert len(boxes) == 6 and all(boxes)
    lefts = {round(box["x"]) for box in boxes if box}
    widths = {round(box["width"]) for box in boxes if box}
    assert len(lefts) == 1 and len(widths) == 1  # stacked, all as wide
    assert next(iter(widths)) > 300
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scroll
    page.screenshot(path=str(SCREENSHOTS / "widgets-dashboard-phone.png"), full_page=True)


def test_a_laptop_sees_the_layout_columns(start_site: StartSite, page: Page) -> None:
    site = start_site()
    open_dashboard(page, site.url)
    boxes = page.locator("moksha-grid > .moksha-cell").evaluate_all(
        "cells => cells.map(c => { const r = c.getBoundingClientRect(); return [r.x, r.width]; })"
    )
    load, status = boxes[0], boxes[1]
    assert load[0] < status[0]  # side by side
    assert abs(load[1] - 2 * status[1]) < 40  # the load chart spans two columns of three
    assert abs(boxes[5][1] - (load[1] + status[1])) < 40  # the inspector, all three


def test_live_widgets_share_one_connection_and_run_their_code(
    start_site: StartSite, page: Page, console_errors: ConsoleErrors
) -> None:
    site = start_site()
    site.pages["live"] = render_page(
        ChatLine(),
        LiveWidget(topic="chat.#", onmessage="this.textContent = json.text + ' on ' + topic"),
        FeedWidget(topic="chat.#"),
        title="Chat",
    )
    page.goto(site.url + "/test/live")
    site.wait_for_subscriptions(1)
    site.send("chat.room", {"text": "hello"})
    page.locator(".chat-line", has_text="hello").wait_for()
    page.locator("div.moksha-live", has_text="hello on chat.room").wait_for()
    page.locator("moksha-feed li", has_text="hello").wait_for()
    assert site.hub is not None and site.hub.livesocket is not None
    assert site.hub.livesocket.stats()["clients"] == 1  # three widgets, one socket
    assert console_errors == []


def test_a_page_without_python_uses_the_elements_with_two_script_tags(
    start_site: StartSite, page: Page, console_errors: ConsoleErrors
) -> None:
    site = start_site()
    site.pages["plain"] = STANDALONE
    page.goto(site.url + "/test/plain")
    site.wait_for_subscriptions(1)
    site.send("chat.room", {"text": "hi"})
    page.locator("moksha-live", has_text="hi (chat.room)").wait_for()
    page.locator("moksha-feed li", has_text="hi").wait_for()
    # The components linked their stylesheet themselves: the feed is drawn as a card.
    stylesheet = page.locator('link[href$="/widgets/moksha-widgets.css"]')
    assert stylesheet.count() == 1
    radius = page.locator("moksha-feed").evaluate("e => getComputedStyle(e).borderRadius")
    assert radius == "10px"
    assert console_errors == []
