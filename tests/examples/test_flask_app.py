"""``examples/flask_app``: a Flask page with a live widget and a form, run in Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from example_support import chat_in_two_windows, running_example

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def test_a_line_sent_in_one_window_appears_live_in_the_other(
    browser: Browser, tmp_path: Path
) -> None:
    with running_example("flask_app", tmp_path) as url:
        chat_in_two_windows(browser, url)
