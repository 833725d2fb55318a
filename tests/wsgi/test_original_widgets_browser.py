"""A Moksha 1.x widget package under ``moksha start``, in Chromium, fed by ``moksha send``.

The package (``tests/data/wsgi/helloworld``) is written exactly as the original
documentation shows: a ``moksha.wsgi.widgets.api.LiveWidget`` with jQuery in its
``onmessage`` and a ``mako:`` template, a tw2 widget with a ``genshi:`` template and
a ``JSLink``; its entry points come from its ``dist-info`` on ``PYTHONPATH``.
``moksha start`` and ``moksha send`` meet on the local RabbitMQ.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest

from support import RUN_QUEUE_PREFIX, TIMEOUT, require_service

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Request

START_TIMEOUT = 20.0  # a cold interpreter importing everything, on a slow CI machine
PAGE_TIMEOUT_MS = 5000
SHOWN_WITHIN_MS = 2000  # the promise: a sent message is on the page within 2 s
JQUERY = "/_moksha/tw2/xstatic.pkg.jquery/data/jquery.min.js"
LAYOUT = [{"widget": "helloworld"}, {"widget": "status"}]


class Started:
    def __init__(self, url: str, config: Path, env: dict[str, str]) -> None:
        self.url, self.config, self.env = url, config, env

    def send(self, topic: str, body: object) -> None:
        """``moksha send`` as a user types it, against the same broker."""
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "moksha",
                "send",
                "-c",
                str(self.config),
                topic,
                json.dumps(body),
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
        assert done.returncode == 0, done.stderr

    def wait_for_subscriptions(self, count: int) -> None:
        """Until the live socket counts ``count`` subscriptions of browsers (bounded)."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            status = httpx.get(f"{self.url}/livesocket/status", timeout=1).json()
            if status["subscriptions"] >= count:
                return
            time.sleep(0.05)
        pytest.fail(f"fewer than {count} subscriptions within {TIMEOUT}s: {status}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def started(tmp_path: Path, helloworld: Path) -> Iterator[Started]:
    require_service("RabbitMQ", 5672)
    port = free_port()
    (tmp_path / "layout.json").write_text(json.dumps(LAYOUT))
    config = tmp_path / "development.ini"
    config.write_text(
        "[app:main]\n"
        "moksha.backends = amqp\n"
        "amqp_broker = amqp://guest:guest@127.0.0.1:5672/\n"
        f"amqp_queue_prefix = {RUN_QUEUE_PREFIX}\n"
        f"moksha.dashboard.layout = {tmp_path / 'layout.json'}\n"
        "moksha.dashboard.demo = false\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOKSHA_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(helloworld), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "moksha", "start", "--port", str(port), "-c", str(config)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        answered = False
        while not answered and process.poll() is None and time.monotonic() < deadline:
            try:
                answered = httpx.get(f"{url}/", timeout=1).status_code == 200
            except httpx.TransportError:
                time.sleep(0.05)
        if not answered:
            process.kill()
            pytest.fail(
                f"moksha start did not answer within {START_TIMEOUT}s: {process.communicate()}"
            )
        yield Started(url, config, env)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    yield context.new_page()
    context.close()


def watch(page: Page) -> tuple[list[str], list[str]]:
    """The URLs the page requests, and its console errors, as they come."""
    requested: list[str] = []
    errors: list[str] = []

    def on_request(request: Request) -> None:
        requested.append(request.url)

    page.on("request", on_request)
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return requested, errors


def test_an_original_live_widget_shows_what_moksha_send_sends(started: Started, page: Page) -> None:
    requested, errors = watch(page)
    page.goto(f"{started.url}/widgets/helloworld")
    page.locator("moksha-connection[data-state=open]").wait_for()
    started.wait_for_subscriptions(1)  # the page's one pattern: helloworld

    started.send("helloworld", {"msg": "hi"})

    item = page.locator(".helloworld ul li").first
    item.wait_for(timeout=SHOWN_WITHIN_MS)
    assert item.text_content() == "hi"
    assert page.locator(".helloworld h3").text_content() == "Hello World"  # its mako: file
    assert [url for url in requested if url.endswith(JQUERY)] == [f"{started.url}{JQUERY}"]
    assert {urlsplit(url).netloc for url in requested} == {urlsplit(started.url).netloc}
    assert errors == []


def test_the_dashboard_shows_original_widgets_with_their_templates_and_resources(
    started: Started, page: Page
) -> None:
    requested, errors = watch(page)
    page.goto(f"{started.url}/")
    page.locator("moksha-connection[data-state=open]").wait_for()
    started.wait_for_subscriptions(1)  # the page's one pattern: helloworld

    started.send("helloworld", {"msg": "hello from the dashboard"})

    page.locator(".helloworld ul li").first.wait_for(timeout=SHOWN_WITHIN_MS)
    assert page.locator(".helloworld ul li").all_text_contents() == ["hello from the dashboard"]
    assert page.locator(".status .status-text").text_content() == "all quiet"  # genshi: file
    # The JSLink's file is served and ran once; the JSSource ran once.
    assert page.evaluate("window.helloworldStatusLoads") == 1
    assert page.evaluate("window.helloworldInline") == 1
    assert sum(url.endswith(JQUERY) for url in requested) == 1
    assert {urlsplit(url).netloc for url in requested} == {urlsplit(started.url).netloc}
    assert errors == []
