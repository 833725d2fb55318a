"""Fixtures of the feed tests: a feed server (see :mod:`feed_support`), a clean environment."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from feed_support import DATA, FeedServer

from moksha.widgets.registry import installed_widgets


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A running :class:`FeedServer`, closed after the test."""
    server = FeedServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No config file nearby, no MOKSHA_* variables, and files written under tmp_path."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("MOKSHA_"):
            monkeypatch.delenv(name)


@pytest.fixture
def cache_url(tmp_path: Path) -> str:
    """A feed cache in a SQLite file of this test."""
    return f"sqlite:///{tmp_path / 'feeds.sqlite'}"


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The package of ``tests/data/feeds/plugin`` installed: its entry points visible.

    It declares three post-processors (and one that cannot load) and the
    feed widgets' names on ``moksha.widget``.
    """
    target = tmp_path / "site"
    shutil.copytree(DATA / "plugin", target)
    monkeypatch.syspath_prepend(str(target))
    installed_widgets.cache_clear()  # read once per process: read again with the plugin
    yield target
    sys.modules.pop("feed_test_plugins", None)
    installed_widgets.cache_clear()
