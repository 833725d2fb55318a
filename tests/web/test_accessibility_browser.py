"""axe-core on every page Moksha serves, light and dark: no serious or critical violation.

The site is ``create_app`` on a real server (as ``moksha start`` runs it), with data on
show: chart points, feed and inspector rows, a long body, the hub status tables.
axe-core comes from the npm registry at set-up (``axe_support``), never from this repo.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from test_pages_browser import PAGE_TIMEOUT_MS, MokshaSite

from axe_support import axe_script, blocking_violations

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Browser

__all__ = ["axe_script"]  # a fixture: imported for pytest to find

PAGES = [
    "/",
    "/widgets/chart?topic=moksha.demo.system&fields=load1,load5&heading=Load",
    "/widgets/feed?topic=moksha.demo.%23",
    "/widgets/inspector",
    "/widgets/hub_status",
    "/widgets/live?topic=moksha.demo.counter",
    "/widgets/grid",
    "/widgets/chart",  # 400: a param is missing
    "/widgets/no_such_widget",  # 404
]


@pytest.fixture(scope="module")
def demo_site() -> Iterator[MokshaSite]:
    started = MokshaSite({"moksha.backends": "memory", "moksha.dashboard.demo": True}).start()
    for n in range(5):
        started.send("moksha.demo.system", {"load1": 0.5 + n / 10, "load5": 0.4, "load15": 0.3})
    # Enough rows that the feed's list scrolls (axe then wants it reachable by keyboard).
    for n in range(25):
        started.send("moksha.demo.counter", {"count": n, "text": "a long body " * 30})
    yield started
    started.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("path", PAGES)
def test_no_serious_or_critical_violations(
    browser: Browser, demo_site: MokshaSite, axe_script: Path, path: str, scheme: str
) -> None:
    # The pages' Content-Security-Policy would refuse the injected checker (not the page's).
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, color_scheme=scheme, bypass_csp=True
    )
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    page.goto(demo_site.url + path)
    if path == "/":
        page.locator("moksha-feed li").nth(19).wait_for()
        page.locator("moksha-hub-status tbody tr").first.wait_for()
        page.locator("moksha-chart polyline").first.wait_for()
        # The inspector shows what arrives once it follows '#': send until it has rows.
        page.locator("moksha-connection[data-state=open]").wait_for()
        rows = page.locator("moksha-inspector li")
        for n in range(50):  # bounded: 50 sends, 100 ms apart at most
            demo_site.send("moksha.demo.counter", {"count": n})
            if rows.count() >= 3:
                break
            page.wait_for_timeout(100)
        rows.nth(2).wait_for()
        rows.first.locator("summary").click()  # an open message, its pretty JSON on show
    violations = blocking_violations(page, axe_script)
    context.close()
    assert violations == [], f"{path} ({scheme}): {violations}"


def test_error_pages_follow_the_colour_scheme(browser: Browser, demo_site: MokshaSite) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(color_scheme=scheme)
        page = context.new_page()
        page.goto(demo_site.url + "/widgets/no_such_widget")
        colours[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
        context.close()
    assert colours["light"] == "rgb(245, 247, 250)"
    assert colours["dark"] == "rgb(15, 19, 25)"


def test_placeholders_are_readable(browser: Browser, demo_site: MokshaSite) -> None:
    # axe-core does not check placeholders: their contrast is computed here (WCAG's formula).
    for scheme in ("light", "dark"):
        context = browser.new_context(color_scheme=scheme)
        page = context.new_page()
        page.goto(demo_site.url + "/widgets/inspector")
        for name in ("pattern", "filter"):
            ratio = page.evaluate(CONTRAST, f"moksha-inspector input[name={name}]")
            assert ratio >= 4.5, f"{name} placeholder ({scheme}): {ratio:.2f}:1"
        context.close()


CONTRAST = """(selector) => {
    const input = document.querySelector(selector);
    const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 3).map(Number);
    const luminance = ([r, g, b]) => {
        const [R, G, B] = [r, g, b].map((c) => {
            c /= 255;
            return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * R + 0.7152 * G + 0.0722 * B;
    };
    const fg = luminance(rgb(getComputedStyle(input, "::placeholder").color));
    const bg = luminance(rgb(getComputedStyle(input).backgroundColor));
    return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
}"""
