"""The archive's first tables: messages, users, packages, dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from moksha.archive.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_HEADERS = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "moksha_archive_messages",
        sa.Column("id", _ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("msg_id", sa.String(255), nullable=False, unique=True),
        sa.Column("topic", sa.String(512), nullable=False),
        sa.Column("category", sa.String(255), nullable=True),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("headers", _HEADERS, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("agent", sa.String(255), nullable=True),
        sa.Column("priority", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_moksha_archive_messages_time", "moksha_archive_messages", ["timestamp", "id"]
    )
    op.create_index(
        "ix_moksha_archive_messages_topic", "moksha_archive_messages", ["topic", "timestamp", "id"]
    )
    op.create_index(
        "ix_moksha_archive_messages_category", "moksha_archive_messages", ["category", "timestamp"]
    )
    op.create_index(
        "ix_moksha_archive_messages_agent", "moksha_archive_messages", ["agent", "timestamp"]
    )
    for kind in ("users", "packages"):
        op.create_table(
            f"moksha_archive_{kind}",
            sa.Column("name", sa.String(255), nullable=False),
            sa.Column("msg_id", sa.String(255), nullable=False),
            sa.PrimaryKeyConstraint("name", "msg_id"),
        )
        op.create_index(f"ix_moksha_archive_{kind}_msg", f"moksha_archive_{kind}", ["msg_id"])
    op.create_table(
        "moksha_archive_dead",
        sa.Column("msg_id", sa.String(255), primary_key=True),
        sa.Column("original_topic", sa.String(512), nullable=False),
        sa.Column("original_id", sa.String(255), nullable=True),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("consumer", sa.String(512), nullable=True),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("acted_at", UTCDateTime(), nullable=True),
        sa.Column("acted_by", sa.String(255), nullable=True),
        sa.Column("requeued_as", sa.String(255), nullable=True),
    )
    op.create_index("ix_moksha_archive_dead_state", "moksha_archive_dead", ["state", "timestamp"])
    op.create_index(
        "ix_moksha_archive_dead_topic", "moksha_archive_dead", ["original_topic", "timestamp"]
    )


def downgrade() -> None:
    for table in ("dead", "packages", "users", "messages"):
        op.drop_table(f"moksha_archive_{table}")
