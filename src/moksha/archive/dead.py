"""Dead letters in the archive: list them, requeue them on their topic, or discard them.

A dead letter is requeued at most once: the row is claimed (``dead`` →
``requeued``, with who, when and the new message's id) in the same
transaction that reads it, and only a claimed row is published; a failed
publish gives the claim back.  Discarding only marks the row: the archive
keeps every message it recorded.  Both are recorded on the row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select, update
from sqlalchemy.engine import Connection, Engine, RowMapping

from moksha.archive.models import DEAD, MESSAGES
from moksha.archive.query import topic_condition
from moksha.archive.rows import REQUEUED_HEADER
from moksha.message import Message, new_message_id

__all__ = ["DeadFilter", "Requeued", "count_dead", "discard", "list_dead", "requeue"]

# Headers the hub set when it gave up on the message: not part of the requeued one.
_DEAD_HEADERS = (
    "moksha-dead-letter",
    "moksha-original-id",
    "moksha-error",
    "moksha-attempts",
    "moksha-consumer",
    "moksha-attempt",
)


@dataclass(frozen=True, slots=True)
class DeadFilter:
    """Which dead letters: by original topic (pattern), error text, time, state, or ids."""

    topic: str | None = None
    error: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    state: str | None = "dead"
    ids: tuple[str, ...] = ()


def _where(selection: DeadFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if selection.state:
        where.append(DEAD.c.state == selection.state)
    if selection.ids:
        where.append(DEAD.c.msg_id.in_(selection.ids))
    if selection.topic:
        where.append(topic_condition(selection.topic, DEAD.c.original_topic))
    if selection.error:
        where.append(DEAD.c.error.contains(selection.error, autoescape=True))
    if selection.since is not None:
        where.append(DEAD.c.timestamp >= selection.since)
    if selection.until is not None:
        where.append(DEAD.c.timestamp <= selection.until)
    return where


def _listing(selection: DeadFilter) -> Select[Any]:
    joined = DEAD.join(MESSAGES, MESSAGES.c.msg_id == DEAD.c.msg_id)
    columns = [
        *DEAD.c,
        MESSAGES.c.headers,
        MESSAGES.c.body,
        MESSAGES.c.content_type,
        MESSAGES.c.id.label("row_id"),
    ]
    return select(*columns).select_from(joined).where(*_where(selection))


def list_dead(
    connection: Connection, selection: DeadFilter, *, limit: int = 100, offset: int = 0
) -> list[RowMapping]:
    """The dead letters ``selection`` picks, newest first."""
    statement = _listing(selection).order_by(DEAD.c.timestamp.desc(), DEAD.c.msg_id)
    return list(connection.execute(statement.limit(limit).offset(offset)).mappings())


def count_dead(connection: Connection, selection: DeadFilter) -> int:
    statement = select(func.count()).select_from(DEAD).where(*_where(selection))
    return int(connection.execute(statement).scalar_one())


@dataclass(frozen=True, slots=True)
class Requeued:
    """One requeue: the dead letter, and the message published for it (None: not published)."""

    dead_id: str
    topic: str
    message: Message | None
    note: str


def _requeued_message(row: RowMapping, new_id: str) -> Message:
    headers = {k: v for k, v in dict(row["headers"]).items() if k not in _DEAD_HEADERS}
    headers[REQUEUED_HEADER] = row["msg_id"]
    return Message(
        row["original_topic"],
        headers=headers,
        id=new_id,
        payload=row["body"],
        content_type=row["content_type"],
    )


def claim(engine: Engine, selection: DeadFilter, by: str | None, limit: int) -> list[Message]:
    """Mark up to ``limit`` waiting dead letters as requeued; return the messages to publish."""
    now = datetime.now(UTC)
    claimed: list[Message] = []
    with engine.begin() as connection:
        waiting = DeadFilter(
            selection.topic,
            selection.error,
            selection.since,
            selection.until,
            "dead",
            selection.ids,
        )
        for row in list_dead(connection, waiting, limit=limit):
            new_id = new_message_id()
            done = connection.execute(
                update(DEAD)
                .where(and_(DEAD.c.msg_id == row["msg_id"], DEAD.c.state == "dead"))
                .values(state="requeued", acted_at=now, acted_by=by, requeued_as=new_id)
            )
            if done.rowcount == 1:  # else another requeue claimed it first
                claimed.append(_requeued_message(row, new_id))
    return claimed


def unclaim(engine: Engine, dead_id: str) -> None:
    """Give a claim back (its publish failed): the dead letter waits again."""
    with engine.begin() as connection:
        connection.execute(
            update(DEAD)
            .where(DEAD.c.msg_id == dead_id)
            .values(state="dead", acted_at=None, acted_by=None, requeued_as=None)
        )


async def requeue(
    engine: Engine,
    selection: DeadFilter,
    publish: Callable[[Message], Awaitable[Any]],
    *,
    by: str | None = None,
    limit: int = 10_000,
    run: Callable[..., Awaitable[Any]] | None = None,
) -> list[Requeued]:
    """Republish the waiting dead letters ``selection`` picks on their original topic.

    Args:
        engine: the archive's engine.
        selection: which dead letters.
        publish: publishes one message (``publish_message`` bound to a hub); may
            return the id it was published under, when not the message's own.
        by: who asked (recorded).
        limit: at most this many.
        run: runs a blocking call off the event loop (default ``asyncio.to_thread``).

    Returns:
        One :class:`Requeued` per dead letter claimed; one whose publish failed
        waits again and says why in ``note``.
    """
    run = run or asyncio.to_thread
    messages: list[Message] = await run(claim, engine, selection, by, limit)
    done: list[Requeued] = []
    for message in messages:
        dead_id = message.headers[REQUEUED_HEADER]
        try:
            published = await publish(message)
        except Exception as exc:
            await run(unclaim, engine, dead_id)
            done.append(Requeued(dead_id, message.topic, None, f"not published: {exc}"))
            continue
        new_id = published if isinstance(published, str) else message.id
        if new_id != message.id:  # a remote hub chose the id: record that one
            await run(_record_new_id, engine, dead_id, new_id)
        done.append(Requeued(dead_id, message.topic, message, f"requeued as {new_id}"))
    return done


def _record_new_id(engine: Engine, dead_id: str, new_id: str) -> None:
    with engine.begin() as connection:
        connection.execute(update(DEAD).where(DEAD.c.msg_id == dead_id).values(requeued_as=new_id))


def discard(engine: Engine, selection: DeadFilter, *, by: str | None = None) -> int:
    """Mark the waiting dead letters ``selection`` picks as discarded; returns how many."""
    waiting = replace(selection, state="dead")
    matching = select(DEAD.c.msg_id).where(*_where(waiting)).scalar_subquery()
    with engine.begin() as connection:
        result = connection.execute(
            update(DEAD)
            .where(DEAD.c.msg_id.in_(matching), DEAD.c.state == "dead")
            .values(state="discarded", acted_at=datetime.now(UTC), acted_by=by)
        )
    return int(result.rowcount or 0)
