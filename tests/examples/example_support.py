"""Helpers of the example tests: run ``examples/<name>/app.py`` as a reader does, in Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from playwright.sync_api import Browser

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PAGE_TIMEOUT_MS = 10_000
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_example(name: str, cwd: Path) -> Iterator[str]:
    """``python examples/<name>/app.py --port P`` until done; yields its URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOKSHA_")}
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / name / "app.py"), "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(url + "/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            process.kill()
            raise AssertionError(f"{name} did not answer: {process.communicate()[1][-2000:]}")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def chat_in_two_windows(browser: Browser, url: str) -> None:
    """What the tutorials promise: a line sent in one window appears in the other, live."""
    context = browser.new_context()
    errors: list[str] = []
    viewer, sender = context.new_page(), context.new_page()
    for page in (viewer, sender):
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url + "/")
        page.wait_for_function("window.moksha && window.moksha.state === 'open'")

    sender.get_by_label("Message").fill("hello from the other window")
    sender.get_by_role("button", name="Send").click()
    sender.wait_for_url(url + "/")  # the form redirects back to the page

    viewer.locator(".chat-log li", has_text="hello from the other window").wait_for()
    sender.get_by_label("Message").fill("second line")
    sender.get_by_role("button", name="Send").click()
    viewer.locator(".chat-log li", has_text="second line").wait_for()
    assert viewer.locator(".chat-log li").all_inner_texts() == [
        "second line",
        "hello from the other window",
    ]
    assert errors == []
    context.close()
