"""Alembic's environment for the archive: runs on the connection Moksha hands it.

Moksha calls the migrations itself (:func:`moksha.archive.store.migrate`), so
this reads no ``alembic.ini`` and configures no logging; the version table has
a name of its own, so an application's own Alembic history in the same
database is left alone.
"""

from __future__ import annotations

from alembic import context

from moksha.archive.models import metadata

VERSION_TABLE = "moksha_archive_alembic_version"

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
