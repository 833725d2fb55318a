"""The archive: every message of the bus, recorded, searchable, replayable.

* :mod:`~moksha.archive.recorder`: the built-in consumer (``moksha.archive = true``);
* :mod:`~moksha.archive.store`: the database, its Alembic migrations, writes, retention;
* :mod:`~moksha.archive.query`: datagrepper v2 searches, shared by HTTP and the CLI;
* :mod:`~moksha.archive.dead`: dead letters: list, requeue, discard;
* :mod:`~moksha.archive.replay`: republishing archived messages;
* :mod:`~moksha.archive.web`: ``/archive/`` on ``moksha start``.
"""

from moksha.archive.store import ArchiveStore, archive_url

__all__ = ["ArchiveStore", "archive_url"]
