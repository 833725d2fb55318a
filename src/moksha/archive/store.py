"""The archive database: its engine, its migrations, batched idempotent writes, retention.

:class:`ArchiveStore` is used from worker threads (every method blocks on the
database); the recorder, the HTTP API and the CLI all go through it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.dml import Insert

from moksha.archive.models import DEAD, MESSAGES, PACKAGES, USERS
from moksha.archive.rows import Categorizer, MessageRows, message_rows
from moksha.config import Config
from moksha.message import Message
from moksha.sql import store_engine

__all__ = ["ArchiveStore", "archive_url", "migrate"]

log = logging.getLogger("moksha.archive")

MIGRATIONS = Path(__file__).parent / "migrations"
URL_KEY = "moksha.archive.url"


def archive_url(config: Config) -> str:
    """The archive's database URL: ``moksha.archive.url``, else a SQLite file in the data dir."""
    return config.archive_url or f"sqlite:///{Path(config.data_dir) / 'archive.sqlite'}"


def migrate(connection: Connection) -> None:
    """Bring the archive's tables to the newest migration (Alembic ``upgrade head``)."""
    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(MIGRATIONS))
    alembic.attributes["connection"] = connection
    command.upgrade(alembic, "head")


def _insert_ignoring_duplicates(engine: Engine, table: Any) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING``: a redelivered message is stored once."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return insert(table).prefix_with("IGNORE")  # MySQL and MariaDB


class ArchiveStore:
    """One archive database.

    Args:
        url: its SQLAlchemy URL.
        categorize: the category rule of recorded messages.
        migrate_now: run the migrations when opening (default).

    Raises:
        ConfigError: the URL cannot be used.
    """

    _migrated: set[str] = set()
    _migrating = threading.Lock()

    def __init__(
        self, url: str, *, categorize: Categorizer | None = None, migrate_now: bool = True
    ) -> None:
        self.engine: Engine = store_engine(url, key=URL_KEY, what="archive")
        self.categorize = categorize or Categorizer()
        self._insert_messages = _insert_ignoring_duplicates(self.engine, MESSAGES)
        self._insert_users = _insert_ignoring_duplicates(self.engine, USERS)
        self._insert_packages = _insert_ignoring_duplicates(self.engine, PACKAGES)
        self._insert_dead = _insert_ignoring_duplicates(self.engine, DEAD)
        if migrate_now:
            self.migrate()

    @classmethod
    def from_config(cls, config: Config) -> ArchiveStore:
        """The archive ``config`` names (``moksha.archive.url``), migrated."""
        return cls(archive_url(config), categorize=Categorizer.from_config(config))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> None:
        """Run the migrations, once per database and process."""
        key = self.engine.url.render_as_string(hide_password=False)
        with self._migrating:
            if key in self._migrated:
                return
            with self.engine.begin() as connection:
                migrate(connection)
            self._migrated.add(key)

    def close(self) -> None:
        self.engine.dispose()

    # -- writing ----------------------------------------------------------

    def rows(self, messages: Iterable[Message]) -> list[MessageRows]:
        categorize = self.categorize
        return [message_rows(message, categorize) for message in messages]

    def record(self, messages: Sequence[Message]) -> None:
        """Store ``messages`` in one transaction; those already stored are skipped."""
        self.write(self.rows(messages))

    def write(self, rows: Sequence[MessageRows]) -> None:
        """Store prepared rows in one transaction (a row whose id is stored is skipped)."""
        if not rows:
            return
        users = [user for row in rows for user in row.users]
        packages = [package for row in rows for package in row.packages]
        dead = [row.dead for row in rows if row.dead is not None]
        with self.engine.begin() as connection:
            connection.execute(self._insert_messages, [row.message for row in rows])
            if users:
                connection.execute(self._insert_users, users)
            if packages:
                connection.execute(self._insert_packages, packages)
            if dead:
                connection.execute(self._insert_dead, dead)

    # -- retention --------------------------------------------------------

    def purge_older_than(self, days: int, *, now: datetime | None = None) -> int:
        """Delete messages (and their users, packages, dead letters) older than ``days``.

        Returns:
            How many messages were deleted.
        """
        cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
        old = select(MESSAGES.c.msg_id).where(MESSAGES.c.timestamp < cutoff).scalar_subquery()
        with self.engine.begin() as connection:
            for table in (USERS, PACKAGES, DEAD):
                connection.execute(delete(table).where(table.c.msg_id.in_(old)))
            deleted = connection.execute(delete(MESSAGES).where(MESSAGES.c.timestamp < cutoff))
        if deleted.rowcount:
            log.info("archive: %d messages older than %d days deleted", deleted.rowcount, days)
        return int(deleted.rowcount or 0)
