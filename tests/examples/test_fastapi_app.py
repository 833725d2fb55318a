"""``examples/fastapi_app``: a FastAPI page with a live widget and a form, run in Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from example_support import chat_in_two_windows, running_example

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def test_a_line_sent_in_one_window_appears_live_in_the_other(
    browser: Browser, tmp_path: Path
) -> None:
    with running_example("fastapi_app", tmp_path) as url:
        # One process, one port: the live socket is served by the app itself.
        status = httpx.get(url + "/livesocket/status", timeout=5)
        assert status.status_code == 200
        chat_in_two_windows(browser, url)
