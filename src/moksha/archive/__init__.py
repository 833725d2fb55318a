"""The archive: every message of the bus, recorded, searchable, replayable.

* :mod:`~moksha.archive.recorder`: the built-in consumer (``moksha.archive = true``),
  brought to the hub by :mod:`~moksha.archive.attachment`;
* :mod:`~moksha.archive.store`: the database, its Alembic migrations, writes, retention;
* :mod:`~moksha.archive.query`: datagrepper v2 searches, shared by HTTP and the CLI;
* :mod:`~moksha.archive.dead`: dead letters: list, requeue, discard;
* :mod:`~moksha.archive.replay`: republishing archived messages;
* :mod:`~moksha.archive.web`: ``/archive/`` on ``moksha start``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moksha.archive.store import ArchiveStore, archive_url

__all__ = ["ArchiveStore", "archive_url"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: every hub start loads the archive's attachment factory
    # (moksha.archive.attachment), which must not cost an import of Alembic.
    if name in __all__:
        from moksha.archive import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
