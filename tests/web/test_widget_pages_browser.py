"""Standalone widget pages in Chromium: human titles, and errors that say how to fix the link."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from test_pages_browser import MokshaSite, open_page

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="module")
def site() -> Iterator[MokshaSite]:
    started = MokshaSite({"moksha.backends": "memory"}).start()
    yield started
    started.close()


@pytest.mark.parametrize(
    ("path", "title"),
    [
        ("/widgets/hub_status", "Hub status"),
        ("/widgets/inspector", "Topic inspector"),
        ("/widgets/feed", "Messages"),
        ("/widgets/chart?topic=sensors.%23&fields=celsius", "Chart"),
        ("/widgets/chart?topic=sensors.%23&fields=celsius&heading=Kitchen", "Kitchen"),
    ],
)
def test_widget_pages_have_human_titles(
    browser: Browser, site: MokshaSite, path: str, title: str
) -> None:
    page, errors = open_page(browser, site.url + path)
    assert page.title() == title
    assert page.locator("h1").inner_text() == title
    assert errors == []
    page.context.close()


def test_a_missing_param_says_how_to_pass_it(browser: Browser, site: MokshaSite) -> None:
    context = browser.new_context()
    page = context.new_page()
    response = page.goto(site.url + "/widgets/chart?fields=celsius")
    assert response is not None and response.status == 400
    text = page.locator("main").inner_text()
    assert "ChartWidget needs the param 'topic' (the pattern whose messages are drawn)" in text
    assert "/widgets/chart?fields=celsius&topic=..." in text
    context.close()
