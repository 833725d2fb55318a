"""Replaying archived messages: read them in order, make each a new message, publish it.

A replayed message has a new id and the ``moksha-replayed`` header (the
archived message's id), so consumers can tell it from the original and skip
it, and the recorder does not store it twice.  Its payload and other headers
are the archived ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from sqlalchemy.engine import Engine, RowMapping

from moksha.archive.query import Search, search
from moksha.archive.rows import REPLAYED_HEADER
from moksha.message import Message, new_message_id

__all__ = ["archived_rows", "replayed_message"]

BATCH = 100


def archived_rows(engine: Engine, query: Search) -> tuple[int, Iterator[RowMapping]]:
    """How many messages ``query`` finds, and those messages oldest first (read 100 at a time).

    Raises:
        SearchError: the query is malformed.
    """
    query = replace(query, order="asc", rows_per_page=BATCH, page=1, cursor=None)
    with engine.connect() as connection:
        first = search(connection, query)

    def rows() -> Iterator[RowMapping]:
        page = first
        for _ in range(first.total // BATCH + 2):  # bounded: the pages counted, and one more
            yield from page.rows
            if page.next_cursor is None:
                return
            with engine.connect() as connection:
                page = search(connection, query.with_cursor(page.next_cursor))

    return first.total, rows()


def replayed_message(row: RowMapping, to_topic: str | None = None) -> Message:
    """The message replaying the archived ``row``.

    Args:
        row: an archived message.
        to_topic: publish there instead of the original topic; ``{topic}`` in it
            is the original topic (``replay.{topic}``).
    """
    topic = row["topic"] if not to_topic else to_topic.replace("{topic}", row["topic"])
    headers = {**dict(row["headers"]), REPLAYED_HEADER: row["msg_id"]}
    return Message(
        topic,
        headers=headers,
        id=new_message_id(),
        payload=row["body"],
        content_type=row["content_type"],
    )
