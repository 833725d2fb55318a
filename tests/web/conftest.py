"""Fixtures for the web tests: a clean environment and installed web plugins.

The plugins in ``tests/web/data`` are found through their ``dist-info`` entry
points, as installed packages would be, once their folder is on ``sys.path``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from moksha.widgets.registry import installed_widgets

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No config file nearby and no MOKSHA_* variables from the machine running the tests."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("MOKSHA_"):
            monkeypatch.delenv(name)


def _install(folder: str, module: str) -> Iterator[Path]:
    path = str(DATA / folder)
    sys.path.insert(0, path)
    installed_widgets.cache_clear()  # moksha.widgets reads the entry points once per process
    try:
        yield DATA / folder
    finally:
        sys.path.remove(path)
        installed_widgets.cache_clear()
        sys.modules.pop(module, None)


@pytest.fixture
def web_plugins() -> Iterator[Path]:
    """The web demo plugin installed: apps ``hello``, ``secret``, ``legacy`` (WSGI) and
    ``broken`` (its module is missing); the widget ``greeting``; global resources; an
    authorizer keeping the app ``secret`` for the user ``boss``."""
    yield from _install("site", "web_demo_plugin")


@pytest.fixture
def root_plugin() -> Iterator[Path]:
    """A plugin installing a ``moksha.root`` app that answers with the path it got."""
    yield from _install("root_site", "web_root_plugin")
