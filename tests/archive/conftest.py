"""The archive's tests run on SQLite and on the local PostgreSQL (a database of their own)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from moksha.archive import ArchiveStore
from support import RUN, require_service

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MOKSHA_"):
            monkeypatch.delenv(name)


def _postgres_database() -> Iterator[str]:
    require_service("PostgreSQL", 5432)
    name = f"moksha_archive_{RUN}_{uuid.uuid4().hex[:8]}"
    server = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty archive database: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'archive.sqlite'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def store(archive_url: str) -> Iterator[ArchiveStore]:
    store = ArchiveStore(archive_url)
    yield store
    store.close()


@pytest.fixture
def archive_config(archive_url: str, tmp_path: Path) -> dict[str, Any]:
    """A hub on the in-memory bus recording into ``archive_url``."""
    return {
        "moksha.backends": "memory",
        "moksha.archive": "true",
        "moksha.archive.url": archive_url,
        "moksha.data_dir": str(tmp_path),
    }
