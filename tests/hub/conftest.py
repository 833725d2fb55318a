"""Fixtures of the hub tests."""

from __future__ import annotations

from typing import Any

import pytest

from support import Inbox


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def memory_config() -> dict[str, Any]:
    """The in-memory bus whatever the environment says."""
    return {"moksha.backends": "memory"}
