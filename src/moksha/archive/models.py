"""The archive's tables (SQLAlchemy Core): messages, their users and packages, dead letters.

``moksha_archive_messages`` holds one row per message id, whatever how often
the bus delivered it.  Users and packages live in tables of their own, keyed
by message id, so "every message of user X" is an index lookup.
``moksha_archive_dead`` holds what the hub said about a dead letter (error,
attempts, original topic) and what an operator did with it since.

The schema is created and changed by the Alembic migrations shipped in
``moksha/archive/migrations``, never by ``create_all``: these tables are the
first migration's, and a test checks that the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB

__all__ = [
    "DEAD",
    "DEAD_STATES",
    "MESSAGES",
    "PACKAGES",
    "USERS",
    "UTCDateTime",
    "metadata",
]


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every database (SQLite keeps no time zone: stored as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# A big integer on PostgreSQL; SQLite's rowid alias must be INTEGER.
_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")
_HEADERS = JSON().with_variant(JSONB(), "postgresql")

metadata = MetaData()

MESSAGES = Table(
    "moksha_archive_messages",
    metadata,
    Column("id", _ROW_ID, primary_key=True, autoincrement=True),
    Column("msg_id", String(255), nullable=False, unique=True),
    Column("topic", String(512), nullable=False),
    Column("category", String(255), nullable=True),
    Column("timestamp", UTCDateTime(), nullable=False),
    Column("headers", _HEADERS, nullable=False),
    Column("body", Text, nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("agent", String(255), nullable=True),
    Column("priority", Integer, nullable=False, default=0),
    Index("ix_moksha_archive_messages_time", "timestamp", "id"),
    Index("ix_moksha_archive_messages_topic", "topic", "timestamp", "id"),
    Index("ix_moksha_archive_messages_category", "category", "timestamp"),
    Index("ix_moksha_archive_messages_agent", "agent", "timestamp"),
)

USERS = Table(
    "moksha_archive_users",
    metadata,
    Column("name", String(255), nullable=False),
    Column("msg_id", String(255), nullable=False),
    PrimaryKeyConstraint("name", "msg_id"),
    Index("ix_moksha_archive_users_msg", "msg_id"),
)

PACKAGES = Table(
    "moksha_archive_packages",
    metadata,
    Column("name", String(255), nullable=False),
    Column("msg_id", String(255), nullable=False),
    PrimaryKeyConstraint("name", "msg_id"),
    Index("ix_moksha_archive_packages_msg", "msg_id"),
)

DEAD_STATES = ("dead", "requeued", "discarded")
"""A dead letter waits (``dead``) until it is requeued or discarded."""

DEAD = Table(
    "moksha_archive_dead",
    metadata,
    Column("msg_id", String(255), primary_key=True),
    Column("original_topic", String(512), nullable=False),
    Column("original_id", String(255), nullable=True),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("consumer", String(512), nullable=True),
    Column("timestamp", UTCDateTime(), nullable=False),
    Column("state", String(16), nullable=False, default="dead"),
    Column("acted_at", UTCDateTime(), nullable=True),
    Column("acted_by", String(255), nullable=True),
    Column("requeued_as", String(255), nullable=True),
    Index("ix_moksha_archive_dead_state", "state", "timestamp"),
    Index("ix_moksha_archive_dead_topic", "original_topic", "timestamp"),
)
