"""A dashboard people can rely on, in Chromium: what stays put, what is kept, what is true.

* an opened inspector message stays where it is while new ones wait (and say how many);
* Pause keeps what arrives (bounded, counting what it dropped), Resume shows it, in the
  inspector and the feed;
* long feed bodies open; screen readers hear a count of new messages, not each one;
* when the server goes, every live card says so and since when;
* the hub table fits or scrolls at 390 px with five-digit counts, and its updates keep
  scroll position, focus and rows;
* charts and feeds start with the recent past from the live socket's history.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Error as PlaywrightError

from moksha.hub.api import Consumer
from moksha.widgets import ChartWidget, FeedWidget, HubStatusWidget, InspectorWidget, render_page

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

    from conftest import StartSite

# Looked at by people (git-ignored).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
# A card's data goes grey and says so within this long after the server goes (ms).
STALE_WITHIN_MS = 8000


def inspector_page(page: Page, site: Any, **params: Any) -> None:
    site.pages["inspector"] = render_page(InspectorWidget(**params), title="Inspector")
    page.goto(site.url + "/test/inspector")
    site.wait_for_subscriptions(1)


def test_an_opened_message_stays_put_while_new_ones_wait(start_site: StartSite, page: Page) -> None:
    site = start_site()
    inspector_page(page, site, pattern="a.#")
    rows = page.locator("moksha-inspector li")
    for n in range(3):
        site.send(f"a.m{n}", {"n": n})
    rows.nth(2).wait_for()
    reading = rows.nth(1).locator("summary")
    reading.click()  # opened with the mouse: focus is on its summary now
    before = reading.bounding_box()
    for n in range(3, 23):
        site.send(f"a.m{n}", {"n": n})
    waiting = page.get_by_role("button", name="20 new messages: show")
    waiting.wait_for()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "widgets-inspector-waiting.png"))
    assert reading.bounding_box() == before  # not moved by a pixel
    assert page.evaluate("document.activeElement.closest('li').dataset.topic") == "a.m1"
    assert rows.count() == 3
    # Closed, the waiting messages come in; the one read is still in the list.
    reading.click()
    rows.nth(22).wait_for()
    assert waiting.is_hidden()
    assert rows.first.get_attribute("data-topic") == "a.m22"


def test_pause_keeps_what_arrives_and_resume_shows_it(start_site: StartSite, page: Page) -> None:
    site = start_site()
    inspector_page(page, site, pattern="p.#")
    inspector = page.locator("moksha-inspector")
    inspector.get_by_role("button", name="Pause").click()
    for n in range(30):
        site.send(f"p.m{n}", {"n": n})
    resume = inspector.get_by_role("button", name="Resume (30 new)")
    resume.wait_for()
    assert inspector.locator("li").count() == 0
    resume.click()
    topics = inspector.locator("li .moksha-topic").all_inner_texts()
    assert topics == [f"p.m{n}" for n in reversed(range(30))]  # all of them, newest first
    assert inspector.get_by_role("button", name="Pause").get_attribute("aria-pressed") == "false"


def test_pause_is_bounded_and_counts_what_it_dropped(start_site: StartSite, page: Page) -> None:
    site = start_site()
    inspector_page(page, site, pattern="p.#", backlog=10)
    inspector = page.locator("moksha-inspector")
    inspector.get_by_role("button", name="Pause").click()
    for n in range(15):
        site.send(f"p.m{n}", {"n": n})
    resume = inspector.get_by_role("button", name="Resume (10 new, 5 dropped)")
    resume.wait_for()
    resume.click()
    topics = inspector.locator("li .moksha-topic").all_inner_texts()
    assert topics == [f"p.m{n}" for n in reversed(range(5, 15))]  # the newest 10
    page.wait_for_function(
        "() => document.querySelector('moksha-inspector .moksha-meta')"
        ".textContent.includes('5 dropped')"
    )


def test_the_feed_pauses_opens_long_bodies_and_announces_counts(
    start_site: StartSite, page: Page
) -> None:
    site = start_site()
    site.pages["feed"] = render_page(
        FeedWidget(topic="f.#", limit=50, backlog=5, history=0), title="Feed"
    )
    page.goto(site.url + "/test/feed")
    site.wait_for_subscriptions(1)
    feed = page.locator("moksha-feed")
    # The list is reachable by keyboard, and no longer reads out every message.
    assert feed.locator("ol").get_attribute("tabindex") == "0"
    assert feed.locator("[aria-live]").count() == 0
    long_text = "word " * 200
    site.send("f.long", {"text": long_text})
    site.send("f.short", {"n": 1})
    feed.locator("li").nth(1).wait_for()
    status = feed.get_by_role("status").filter(has_text="new message")
    status.wait_for()
    assert status.inner_text() == "2 new messages"
    body = feed.locator("li[data-topic='f.long'] details")
    assert body.locator("pre").is_hidden()
    body.locator("summary").click()
    assert long_text.strip() in body.locator("pre").inner_text()

    feed.get_by_role("button", name="Pause").click()
    for n in range(8):
        site.send(f"f.p{n}", {"n": n})
    resume = feed.get_by_role("button", name="Resume (5 new, 3 dropped)")
    resume.wait_for()
    assert feed.locator("li").count() == 2
    resume.click()
    topics = [t for t in feed.locator("li").evaluate_all("(li) => li.map((e) => e.dataset.topic)")]
    assert topics == ["f.p7", "f.p6", "f.p5", "f.p4", "f.p3", "f.short", "f.long"]


class Counter(Consumer):
    topic = "moksha.demo.#"

    def consume(self, message: object) -> None:
        pass


def test_when_the_server_goes_every_live_card_says_so(start_site: StartSite, page: Page) -> None:
    site = start_site(consumers=[Counter])
    page.goto(site.url + "/")
    page.locator("moksha-connection[data-state=open]").wait_for()
    site.wait_for_subscriptions(3)
    site.send("moksha.demo.system", {"load1": 1.0, "memory_used_percent": 40.0})
    site.send("moksha.demo.counter", {"count": 1})
    page.locator("moksha-feed li").first.wait_for()
    page.locator("moksha-hub-status tr[data-name=Counter]").wait_for()
    assert page.locator("[data-stale]").count() == 0
    site.close()
    cards = page.locator("moksha-chart, moksha-feed, moksha-inspector, moksha-hub-status")
    count = cards.count()
    assert count == 6
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-stale]').length === {count}",
        timeout=STALE_WITHIN_MS,
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "widgets-dashboard-stale.png"), full_page=True)
    for index in range(count):
        note = cards.nth(index).locator(".moksha-stale-note").inner_text()
        assert re.fullmatch(
            r"(offline|unreachable) · (last update \d\d:\d\d:\d\d|no data yet)", note
        )
    # The hub card: its poll failed, so its data (backends "connected") is greyed.
    hub = page.locator("moksha-hub-status")
    assert hub.get_attribute("data-stale") == "unreachable"
    assert "last update" in hub.locator(".moksha-stale-note").inner_text()
    assert hub.evaluate("(e) => getComputedStyle(e.querySelector('.moksha-card-body')).filter") == (
        "grayscale(1)"
    )
    feed = page.locator("moksha-feed")
    assert "last update" in feed.locator(".moksha-stale-note").inner_text()


def test_the_hub_status_page_shows_its_polls_freshness(start_site: StartSite, page: Page) -> None:
    site = start_site(consumers=[Counter])
    site.pages["status"] = render_page(HubStatusWidget(), title="Status")
    page.goto(site.url + "/test/status")
    page.wait_for_function(
        "() => /^running · updated \\d\\d:\\d\\d:\\d\\d$/.test("
        "document.querySelector('moksha-hub-status .moksha-meta').textContent)"
    )
    # It polls; it has no live-socket subscription, so the page shows no socket state.
    assert page.locator("moksha-connection").count() == 0
    assert "offline" not in page.locator("body").inner_text()


def big_status(route: Route, polls: list[int]) -> None:
    """The real status, with five-digit counts (and more) in every column."""
    try:
        status = route.fetch().json()
    except PlaywrightError:  # the site stopped (the end of the test)
        route.abort()
        return
    polls.append(len(polls))
    for consumer in status["consumers"]:
        # The backlog changes with every poll (10k, 20k, ...): a test can see each arrive.
        backlog = 10_000 * len(polls)
        consumer.update(
            headcount_in=12_345_678, headcount_out=98_765, backlog=backlog, exceptions=98_765
        )
        consumer["queue_depth"] = 43_210
    route.fulfill(json=status)


@pytest.mark.parametrize("width", [390, 1280])
def test_the_hub_table_fits_or_scrolls_and_updates_keep_scroll_and_focus(
    start_site: StartSite, browser: Browser, width: int
) -> None:
    site = start_site(consumers=[Counter])
    context = browser.new_context(viewport={"width": width, "height": 844})
    page = context.new_page()
    polls: list[int] = []
    page.route("**/_moksha/hub/status", lambda route: big_status(route, polls))
    page.goto(site.url + "/")
    row = page.locator("moksha-hub-status tr[data-name=Counter]")
    row.wait_for()
    assert "98.8 k" in row.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    wrapper = page.locator("moksha-hub-status .moksha-table-scroll").first
    card = page.locator("moksha-hub-status").bounding_box()
    box = wrapper.bounding_box()
    assert card is not None and box is not None
    assert box["x"] + box["width"] <= card["x"] + card["width"]  # inside its card
    fits = wrapper.evaluate("(e) => e.scrollWidth <= e.clientWidth")
    if not fits:  # it scrolls, and shows it: a shadow on the side with more (headless
        # Chromium draws no scrollbar, so the shadow is what can be checked)
        overflow, cue = wrapper.evaluate(
            "(e) => [getComputedStyle(e).overflowX, getComputedStyle(e).backgroundImage]"
        )
        assert overflow in ("auto", "scroll") and "radial-gradient" in cue
    # The Errors column can be brought into view.
    errors = row.locator("td").last
    errors.scroll_into_view_if_needed()
    cell = errors.bounding_box()
    assert cell is not None and cell["x"] + cell["width"] <= width
    # Scrolled and focused, the table is updated in place by the next polls.
    wrapper.focus()
    scrolled = wrapper.evaluate("(e) => { e.scrollLeft = 40; return e.scrollLeft; }")
    assert fits or scrolled > 0
    row.evaluate("(tr) => { tr.__marked = true; }")
    backlog = row.locator("td").nth(3)
    shown = backlog.inner_text()
    page.wait_for_function(
        "(shown) => document.querySelector("
        "'moksha-hub-status tr[data-name=Counter] td:nth-of-type(4)').textContent !== shown",
        arg=shown,
    )
    assert wrapper.evaluate("(e) => e.scrollLeft") == scrolled
    assert wrapper.evaluate("(e) => document.activeElement === e")
    assert row.evaluate("(tr) => tr.__marked") is True  # the same row, not a rebuilt one
    context.close()


def test_charts_and_feeds_start_with_the_recent_past(start_site: StartSite, page: Page) -> None:
    site = start_site()
    for n in range(6):
        site.send("sensors.kitchen", {"celsius": 20 + n})
    site.pages["both"] = render_page(
        ChartWidget(topic="sensors.#", fields="celsius", points=4),
        FeedWidget(topic="sensors.#", limit=3),
        title="Recent",
    )
    page.goto(site.url + "/test/both")
    site.wait_for_subscriptions(1)
    page.wait_for_function(
        "() => document.querySelector('polyline[data-field=celsius]')"
        "?.getAttribute('points').split(' ').length === 4"
    )
    assert page.locator(".moksha-legend-value").inner_text() == "25"
    # Drawn over time: each loaded point at its own place on the time axis.
    points = page.locator("polyline[data-field=celsius]").get_attribute("points") or ""
    xs = [float(point.split(",")[0]) for point in points.split()]
    assert xs == sorted(xs) and len(set(xs)) == 4
    bodies = page.locator("moksha-feed li code").all_inner_texts()
    assert bodies == [json.dumps({"celsius": c}, separators=(",", ":")) for c in (25, 24, 23)]
    # Then live messages follow, once each.
    site.send("sensors.kitchen", {"celsius": 30})
    page.locator(".moksha-legend-value", has_text="30").wait_for()
    assert page.locator("moksha-feed li").count() == 3
    assert page.locator("moksha-feed li code").first.inner_text() == '{"celsius":30}'
