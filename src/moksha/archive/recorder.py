"""The recorder: a built-in consumer writing every message to the archive.

Enabled by ``moksha.archive = true``, :class:`ArchiveRecorder` consumes
``moksha.archive.topics`` (default ``#``) and the dead-letter topics.  Each
``consume`` returns only once its message is committed, so on a broker with
acknowledgements nothing acknowledged is missing from the archive; yet rows
are written in batches: the recorder takes up to ``moksha.archive.batch_size``
messages at a time, and while one batch is being written the next gathers
(group commit, no timer).  Messages a replay republished (``moksha-replayed``)
are not stored again: the archive holds their original.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from moksha.archive.rows import REPLAYED_HEADER
from moksha.archive.store import ArchiveStore
from moksha.hub.api.consumer import Consumer
from moksha.message import Message

if TYPE_CHECKING:
    from moksha.hub.client import MokshaHub

__all__ = ["ArchiveRecorder"]

RETENTION_EVERY = 3600.0
"""Seconds between two deletions of messages past ``moksha.archive.keep_days``."""


class ArchiveRecorder(Consumer):
    """Stores the messages of ``moksha.archive.topics`` in the archive (see the module)."""

    topic: str | list[str] = "#"

    def __init__(self, hub: MokshaHub) -> None:
        super().__init__(hub)
        config = hub.config
        dead = config.dead_letter_topic.format(topic="#")
        self.topic = list(dict.fromkeys([*config.archive_topics, dead]))
        self.workers = config.archive_batch_size
        self.keep_days = config.archive_keep_days
        self.store = ArchiveStore.from_config(config)  # migrated (this runs off the loop)
        self._batcher = Batcher(self.store, config.archive_batch_size, self.keep_days)

    async def consume(self, message: Message) -> None:
        if REPLAYED_HEADER in message.headers:
            return
        await self._batcher.add(message)

    def stop(self) -> None:
        self.store.close()


class Batcher:
    """Group commit: the first waiting caller writes everything pending, batch by batch.

    No task of its own: a caller whose message finds no write in progress
    becomes the writer until nothing is pending; the others wait for their
    batch's outcome (the write's exception, when it failed).
    """

    def __init__(self, store: ArchiveStore, batch_size: int, keep_days: int) -> None:
        self.store = store
        self.batch_size = batch_size
        self.keep_days = keep_days
        self._pending: list[tuple[Message, asyncio.Future[None]]] = []
        self._writing = False
        self._purged_at = -RETENTION_EVERY

    async def add(self, message: Message) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((message, done))
        if not self._writing:
            await self._write_pending()
        await done

    async def _write_pending(self) -> None:
        self._writing = True
        batch: list[tuple[Message, asyncio.Future[None]]] = []
        try:
            while self._pending:
                batch = self._pending[: self.batch_size]
                del self._pending[: self.batch_size]
                error: BaseException | None = None
                try:
                    await asyncio.to_thread(self._write, [message for message, _ in batch])
                except Exception as exc:
                    error = exc
                for _, done in batch:
                    if done.done():
                        continue
                    if error is None:
                        done.set_result(None)
                    else:
                        done.set_exception(error)
                batch = []
        finally:
            self._writing = False
            # Left only when the writer was cancelled: the others' outcome is unknown,
            # so they fail (and are retried) rather than wait for a writer that is gone.
            stranded = batch + self._pending
            self._pending = []
            for _, done in stranded:
                if not done.done():
                    done.set_exception(RuntimeError("the archive's writer was stopped"))

    def _write(self, messages: list[Message]) -> Any:
        self.store.record(messages)
        now = time.monotonic()
        if self.keep_days and now - self._purged_at >= RETENTION_EVERY:
            self._purged_at = now
            self.store.purge_older_than(self.keep_days)
