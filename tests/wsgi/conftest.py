"""Fixtures for the Moksha 1.x compatibility tests: the ``helloworld`` package installed.

``tests/data/wsgi`` holds a package written as Moksha 1.x's documentation shows,
with a ``dist-info`` declaring its ``moksha.widget`` entry points, so putting the
folder on the path installs it as pip would (no venv needed).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from moksha.widgets.registry import installed_widgets

PACKAGES = Path(__file__).resolve().parents[1] / "data" / "wsgi"


@pytest.fixture
def helloworld() -> Iterator[Path]:
    """The Moksha 1.x package ``helloworld`` installed: widgets ``helloworld`` (a
    LiveWidget, ``mako:`` template), ``status`` (``genshi:`` template, a JSLink and a
    JSSource) and ``inline_hello`` (an inline Mako template)."""
    sys.path.insert(0, str(PACKAGES))
    installed_widgets.cache_clear()  # moksha.widgets reads the entry points once per process
    try:
        yield PACKAGES
    finally:
        sys.path.remove(str(PACKAGES))
        installed_widgets.cache_clear()
        for name in [m for m in sys.modules if m == "helloworld" or m.startswith("helloworld.")]:
            del sys.modules[name]
