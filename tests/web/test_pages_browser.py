"""In Chromium, the pages ``moksha start`` serves, under their security headers.

The site is :func:`moksha.web.create_app` on a real server, as ``moksha start``
runs it: the strict Content-Security-Policy must not stop anything the
dashboard or a widget page does, and a phone-wide screen must not scroll
sideways.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from moksha.config import load_config
from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer
from moksha.livesocket import LiveSocket, LiveSocketServer, listen
from moksha.web import create_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PAGE_TIMEOUT_MS = 5000


class AConsumerWithAVeryLongDescriptiveNameForNarrowScreens(Consumer):
    """Its name makes the hub status table wider than a phone."""

    topic = "org.example.sensors.temperature.kitchen.#"

    def consume(self, message: Any) -> None:
        pass


class MokshaSite:
    """``create_app`` around a hub, served on 127.0.0.1 from a loop of its own thread."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.config = load_config(
            overrides={"moksha.dashboard.demo": False, **settings}, environ={}, search=False
        )
        self.url = ""
        self.hub: CentralMokshaHub | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="moksha site", daemon=True)

    def start(self) -> MokshaSite:
        self._thread.start()
        if not self._ready.wait(10):
            raise AssertionError("the site did not start within 10 s")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        consumers = [AConsumerWithAVeryLongDescriptiveNameForNarrowScreens]
        async with CentralMokshaHub(self.config, consumers=consumers) as hub:
            self.hub = hub
            live = LiveSocket(hub, self.config)
            await live.start()
            app = create_app(hub, self.config, live=live)
            server = LiveSocketServer(app, listen("127.0.0.1", 0), 1 << 20)
            serving = asyncio.create_task(server.serve())
            self.url = server.url
            self._ready.set()
            await self._stop.wait()
            for client in list(live.clients):
                live.disconnect(client)
            server.stop()
            await serving
            await app.aclose()
            await live.aclose()

    def send(self, topic: str, body: Any) -> None:
        assert self.hub is not None and self._loop is not None
        asyncio.run_coroutine_threadsafe(self.hub.publish(topic, body), self._loop).result(5)

    def close(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def site() -> Iterator[MokshaSite]:
    started = MokshaSite({"moksha.backends": "memory"}).start()
    yield started
    started.close()


def open_page(browser: Browser, url: str, width: int = 1280) -> tuple[Page, list[str]]:
    """``url`` in a fresh context; returns the page and its console errors (CSP reports too)."""
    context = browser.new_context(viewport={"width": width, "height": 800})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.add_init_script(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    return page, errors


def test_the_dashboard_runs_whole_under_its_content_security_policy(
    browser: Browser, site: MokshaSite
) -> None:
    page, errors = open_page(browser, site.url + "/")
    policy = page.evaluate("() => fetch('/').then(r => r.headers.get('content-security-policy'))")
    assert (
        "script-src 'self' 'nonce-" in policy
        and "unsafe-inline' " not in policy.split("style-src")[0]
    )
    page.wait_for_function(
        "document.querySelector('moksha-connection').textContent.includes('live')"
    )
    page.get_by_text("AConsumerWithAVeryLongDescriptiveNameForNarrowScreens").wait_for()
    site.send("org.example.csp", {"seen": "in the inspector"})
    page.locator("moksha-inspector").get_by_text("in the inspector").first.wait_for()
    assert page.evaluate("window.__violations") == []
    assert errors == []
    page.context.close()


def test_a_live_widget_page_runs_its_nonce_script_and_nothing_else(
    browser: Browser, site: MokshaSite
) -> None:
    page, errors = open_page(browser, site.url + "/widgets/live?topic=org.example.page")
    assert page.title() == "Live widget"
    # The page's own inline script subscribed: the live socket is in use, and says so.
    page.wait_for_function(
        "document.querySelector('moksha-connection').textContent.includes('live')"
    )
    injected = page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.__ran = true'; document.body.append(s); return !!window.__ran; }"
    )
    assert injected is False  # an inline script without the nonce is refused
    assert any(v.startswith("script-src") for v in page.evaluate("window.__violations"))
    assert not [e for e in errors if "Content Security Policy" not in e]
    page.context.close()


def test_a_widget_page_without_live_data_has_a_human_title_and_no_offline_indicator(
    browser: Browser, site: MokshaSite
) -> None:
    page, errors = open_page(browser, site.url + "/widgets/hub_status")
    assert page.title() == "Hub status"
    assert page.locator("h1").inner_text() == "Hub status"
    page.get_by_text("AConsumerWithAVeryLongDescriptiveNameForNarrowScreens").wait_for()
    page.context.close()
    page, errors = open_page(browser, site.url + "/widgets/grid")
    assert page.title() == "Grid"
    assert page.locator("moksha-connection").count() == 0  # nothing live: nothing to say
    assert "offline" not in page.locator("body").inner_text()
    assert errors == []
    page.context.close()


@pytest.mark.parametrize("path", ["/", "/widgets/hub_status"])
def test_on_a_390_px_phone_tables_fit_or_scroll_inside_their_card(
    browser: Browser, site: MokshaSite, path: str
) -> None:
    page, errors = open_page(browser, site.url + path, width=390)
    page.get_by_text("AConsumerWithAVeryLongDescriptiveNameForNarrowScreens").wait_for()
    # The page itself never scrolls sideways...
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # ...and a table wider than its card scrolls inside it, and shows it: a shadow on the
    # side with more (headless Chromium hides scrollbars, so the shadow is what is checked).
    for wrapper in page.locator(".moksha-table-scroll").all():
        if wrapper.evaluate("e => e.scrollWidth <= e.clientWidth"):
            continue  # it fits
        overflow, cue = wrapper.evaluate(
            "e => { const s = getComputedStyle(e); return [s.overflowX, s.backgroundImage]; }"
        )
        assert overflow in ("auto", "scroll")
        assert "radial-gradient" in cue
        assert wrapper.evaluate("e => { e.scrollLeft = 80; return e.scrollLeft; }") > 0
    assert errors == []
    page.context.close()
