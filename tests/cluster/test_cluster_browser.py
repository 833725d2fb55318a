"""A browser page on a cluster: its node stops, moksha.js moves to the next with nothing lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_nodes import cluster
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from support import TIMEOUT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def browser() -> Iterator[Any]:
    """Chromium without its Local Network Access checks.

    The test's page is made by Playwright (no CSP of the dashboard's in the way), and
    Chromium counts such a page as public, refusing it loopback addresses.
    """
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    args = [*CHROMIUM_ARGS, "--disable-features=LocalNetworkAccessChecks"]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield chromium
        chromium.close()


def test_a_page_moves_to_the_next_node_when_its_node_stops(tmp_path: Path, browser: Any) -> None:
    with cluster(tmp_path) as made:
        a, b = made.start(2)
        page = browser.new_page()
        try:
            # A page of its own on A's origin (the dashboard's CSP allows its own origin only;
            # behind one load balancer every node is that origin).
            page.route(
                f"{a.url}/cluster-page",
                lambda route: route.fulfill(
                    content_type="text/html",
                    body=f'<script src="{a.url}/livesocket/moksha.js"></script>',
                ),
            )
            page.goto(f"{a.url}/cluster-page")
            page.evaluate(
                """([urls, pattern]) => {
                    window.got = []; window.verdicts = []; window.closes = [];
                    moksha.on("recovered", (r) => window.verdicts.push(r.recovered));
                    moksha.connect({urls});
                    moksha.subscribe(pattern, (m) => window.got.push(m.body));
                }""",
                [[a.url, b.url], "clusterpage.#"],
            )
            wait = TIMEOUT * 1000
            # Published until the page has one (its subscription is then in place).
            for _ in range(50):
                b.publish("clusterpage.x", 0)
                try:
                    page.wait_for_function("() => window.got.length > 0", timeout=200)
                    break
                except PlaywrightTimeout:
                    continue
            first = page.evaluate("window.got.length")
            stderr = a.terminate()  # SIGTERM: A closes its clients with 1012 and stops
            for n in range(1, 5):
                b.publish("clusterpage.x", n)
            page.wait_for_function(f"() => window.got.length >= {first + 4}", timeout=wait)
            page.wait_for_function("() => window.verdicts.length > 0", timeout=wait)
            got = page.evaluate("window.got")
            verdicts = page.evaluate("window.verdicts")
            url = page.evaluate("moksha.url")
            transport = page.evaluate("moksha.transport")
        finally:
            page.close()
        assert "Traceback" not in stderr
        assert got[first:] == [1, 2, 3, 4]  # after the move: each once, in order
        assert set(got[:first]) == {0}
        assert verdicts == [True]
        assert url == b.url
        assert transport == "websocket"
