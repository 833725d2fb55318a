"""The archive's recorder as a hub attachment (entry point ``moksha.hub.attachment: archive``).

With ``moksha.archive = true`` a central hub runs the recorder
(:class:`~moksha.archive.recorder.ArchiveRecorder`) among its consumers.  This
attachment brings it, through the ``consumers`` an attachment may contribute
(:mod:`moksha.hub.attachment`), so the hub core does not import the archive.
The recorder runs as any consumer does, started with the others and stopped
with them (its ``stop`` closes the archive's database): the attachment itself
has nothing to start or close.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from moksha.config import Config

if TYPE_CHECKING:
    from moksha.hub import CentralMokshaHub

__all__ = ["ArchiveAttachment"]


class ArchiveAttachment:
    """Brings the archive's recorder to a hub.

    Attributes:
        consumers: the consumer classes the hub runs besides its plugins.
    """

    name = "archive"
    serves = False

    def __init__(self) -> None:
        # Imported here: the hub loads every attachment's factory at start, and the
        # recorder's store pulls in SQLAlchemy's ORM and Alembic.
        from moksha.archive.recorder import ArchiveRecorder

        self.consumers: list[type[Any]] = [ArchiveRecorder]

    @classmethod
    def from_config(cls, config: Config) -> ArchiveAttachment | None:
        """The attachment ``moksha.archive = true`` asks for, else None."""
        return cls() if config.archive else None

    async def start(self, hub: CentralMokshaHub) -> None:
        """Nothing to start: the hub runs the recorder with its consumers."""

    async def aclose(self) -> None:
        """Nothing to close: the recorder's ``stop`` closes the archive's database."""
