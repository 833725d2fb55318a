"""Searching the archive as datagrepper's v2 API does; shared by ``/archive/v2`` and the CLI.

:meth:`Search.from_params` reads datagrepper's query parameters (``start``,
``end``, ``delta``, the repeatable ``topic``, ``category``, ``user``,
``package``, ``agent``, ``contains`` and their ``not_`` forms, ``page``,
``rows_per_page``, ``order``) plus ``cursor``; :func:`search` runs it.  Values
of one parameter are alternatives (OR), different parameters all apply (AND).
Topics may be Moksha patterns (``org.example.*``, ``org.example.#``).

Offset pages are served for the first :data:`OFFSET_LIMIT` rows; past them a
search must follow ``next_cursor`` (keyset pagination: the last row's time
and row id), which stays as fast on page 10,000 as on page 1.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, not_, or_, select, true, tuple_
from sqlalchemy.engine import Connection, RowMapping

from moksha.archive.models import MESSAGES, PACKAGES, USERS
from moksha.errors import MokshaError
from moksha.topics import ANY_WORDS, ONE_WORD, literal_prefix, split

__all__ = [
    "MAX_ROWS_PER_PAGE",
    "OFFSET_LIMIT",
    "Page",
    "Search",
    "SearchError",
    "archived_message",
    "find_message",
    "parse_time",
    "search",
    "topic_condition",
]

MAX_ROWS_PER_PAGE = 100
OFFSET_LIMIT = 10_000
"""Rows reachable by ``page``; deeper ones by ``cursor`` only."""

_LISTS = ("topic", "category", "user", "package", "agent", "contains")
M = MESSAGES


class SearchError(MokshaError):
    """A search parameter is wrong; the message says which and what it expects."""


def parse_time(value: str, name: str) -> datetime:
    """An epoch (seconds) or ISO 8601 time as an aware UTC datetime.

    Raises:
        SearchError: ``value`` is neither.
    """
    text = value.strip()
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SearchError(
            f"{name}={value!r} is not a time; give seconds since the epoch or ISO 8601 "
            "(2026-12-04T10:00:00Z)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _whole(value: str, name: str, low: int, high: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if number < low or (high is not None and number > high):
        limit = f"from {low} to {high}" if high is not None else f">= {low}"
        raise SearchError(f"{name}={value!r}: expected a whole number {limit}")
    return number


@dataclass(frozen=True, slots=True)
class Search:
    """One archive search (datagrepper v2's parameters; see the module)."""

    start: datetime | None = None
    end: datetime | None = None
    topic: tuple[str, ...] = ()
    category: tuple[str, ...] = ()
    user: tuple[str, ...] = ()
    package: tuple[str, ...] = ()
    agent: tuple[str, ...] = ()
    contains: tuple[str, ...] = ()
    not_topic: tuple[str, ...] = ()
    not_category: tuple[str, ...] = ()
    not_user: tuple[str, ...] = ()
    not_package: tuple[str, ...] = ()
    not_agent: tuple[str, ...] = ()
    not_contains: tuple[str, ...] = ()
    page: int = 1
    rows_per_page: int = 25
    order: str = "desc"
    cursor: str | None = None
    delta: float | None = field(default=None, compare=False)

    @classmethod
    def from_params(
        cls, params: Mapping[str, Sequence[str]], *, now: datetime | None = None
    ) -> Search:
        """Read datagrepper's query parameters (each name → its values, as given).

        Raises:
            SearchError: a value is malformed, out of range, or a name is unknown.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise SearchError(
                f"unknown parameter {unknown[0]!r}; known: " + ", ".join(sorted(known))
            )

        def one(name: str) -> str | None:
            values = [v for v in params.get(name, ()) if v.strip()]
            return values[-1] if values else None

        lists = {
            name: tuple(v.strip() for v in params.get(name, ()) if v.strip())
            for prefix in ("", "not_")
            for name in (prefix + word for word in _LISTS)
        }
        start = parse_time(v, "start") if (v := one("start")) is not None else None
        end = parse_time(v, "end") if (v := one("end")) is not None else None
        delta = None
        if (text := one("delta")) is not None:
            try:
                delta = float(text)
            except ValueError:
                delta = -1.0
            if not 0 < delta < math.inf:
                raise SearchError(f"delta={text!r}: expected a number of seconds > 0")
            if start is None:
                end = end or now or datetime.now(UTC)
                start = end - timedelta(seconds=delta)
            elif end is None:
                end = start + timedelta(seconds=delta)
        order = (one("order") or "desc").lower()
        if order not in ("asc", "desc"):
            raise SearchError(f"order={order!r}: expected asc or desc")
        rows = one("rows_per_page")
        search = cls(
            start=start,
            end=end,
            page=_whole(p, "page", 1) if (p := one("page")) is not None else 1,
            rows_per_page=_whole(rows, "rows_per_page", 1, MAX_ROWS_PER_PAGE) if rows else 25,
            order=order,
            cursor=one("cursor"),
            delta=delta,
            **lists,
        )
        if search.cursor is not None:
            search.decoded_cursor()  # refused now, not halfway through
        return search

    def arguments(self) -> dict[str, Any]:
        """The search as datagrepper echoes it (times as epoch seconds)."""
        out: dict[str, Any] = {
            "start": self.start.timestamp() if self.start else None,
            "end": self.end.timestamp() if self.end else None,
            "delta": self.delta,
            "page": self.page,
            "rows_per_page": self.rows_per_page,
            "order": self.order,
        }
        for prefix in ("", "not_"):
            for word in _LISTS:
                name = prefix + word
                key = name if word == "contains" else f"{name}s"
                key = key.replace("categorys", "categories")
                out[key] = list(getattr(self, name))
        if self.cursor is not None:
            out["cursor"] = self.cursor
        return out

    def decoded_cursor(self) -> tuple[datetime, int]:
        """The cursor's last row (its time and row id).

        Raises:
            SearchError: the cursor is not one this API gave, or for another order.
        """
        assert self.cursor is not None
        try:
            padded = self.cursor + "=" * (-len(self.cursor) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded))
            micros, row, order = int(data["t"]), int(data["i"]), data["o"]
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise SearchError(
                "cursor: not a cursor of this archive; use next_cursor as given"
            ) from None
        if order != self.order:
            raise SearchError(f"cursor: it continues an order={order} search, not {self.order}")
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros), row

    def with_cursor(self, cursor: str | None) -> Search:
        return replace(self, cursor=cursor, page=1)


def make_cursor(timestamp: datetime, row: int, order: str) -> str:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    micros = (timestamp - epoch) // timedelta(microseconds=1)
    text = json.dumps({"t": micros, "i": row, "o": order}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _pattern_regex(pattern: str) -> str:
    # Matched against "." + topic: every word is preceded by a dot.
    parts = []
    for word in split(pattern):
        if word == ANY_WORDS:
            parts.append(r"(\.[^.]+)*")
        elif word == ONE_WORD:
            parts.append(r"\.[^.]+")
        else:
            parts.append(r"\." + re.escape(word).replace(r"\-", "-"))
    return "^" + "".join(parts) + "$"


def topic_condition(pattern: str, column: Any = None) -> ColumnElement[bool]:
    """SQL for "the topic matches ``pattern``" (AMQP rules; the prefix uses the index).

    Args:
        pattern: a topic or a pattern with ``*`` / ``#``.
        column: the topic column (default: the messages').
    """
    topic = M.c.topic if column is None else column
    words = split(pattern)
    if ONE_WORD not in words and ANY_WORDS not in words:
        return topic == pattern
    prefix = literal_prefix(pattern)
    if words == [ANY_WORDS]:
        return true()
    if words[-1] == ANY_WORDS and ONE_WORD not in words and words.count(ANY_WORDS) == 1:
        return or_(topic == prefix, topic.startswith(prefix + ".", autoescape=True))
    regex = literal(".").concat(topic).regexp_match(_pattern_regex(pattern))
    if prefix:
        return and_(topic.startswith(prefix, autoescape=True), regex)
    return regex


def _in_child(table: Any, names: tuple[str, ...]) -> ColumnElement[bool]:
    return M.c.msg_id.in_(select(table.c.msg_id).where(table.c.name.in_(names)))


def conditions(query: Search) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``query`` (without its cursor)."""
    where: list[ColumnElement[bool]] = []
    if query.start is not None:
        where.append(M.c.timestamp >= query.start)
    if query.end is not None:
        where.append(M.c.timestamp <= query.end)
    if query.topic:
        where.append(or_(*(topic_condition(t) for t in query.topic)))
    if query.not_topic:
        where.append(not_(or_(*(topic_condition(t) for t in query.not_topic))))
    for name, column in (("category", M.c.category), ("agent", M.c.agent)):
        wanted, unwanted = getattr(query, name), getattr(query, f"not_{name}")
        if wanted:
            where.append(column.in_(wanted))
        if unwanted:
            where.append(or_(column.is_(None), column.not_in(unwanted)))
    for name, table in (("user", USERS), ("package", PACKAGES)):
        wanted, unwanted = getattr(query, name), getattr(query, f"not_{name}")
        if wanted:
            where.append(_in_child(table, wanted))
        if unwanted:
            where.append(not_(_in_child(table, unwanted)))
    if query.contains:
        where.append(or_(*(M.c.body.contains(text, autoescape=True) for text in query.contains)))
    for text in query.not_contains:
        where.append(not_(M.c.body.contains(text, autoescape=True)))
    return where


@dataclass(slots=True)
class Page:
    """One page of results: datagrepper's fields plus ``next_cursor``."""

    rows: list[RowMapping]
    total: int
    query: Search
    next_cursor: str | None

    @property
    def pages(self) -> int:
        return math.ceil(self.total / self.query.rows_per_page)

    def to_datagrepper(self) -> dict[str, Any]:
        return {
            "raw_messages": [archived_message(row) for row in self.rows],
            "count": len(self.rows),
            "pages": self.pages,
            "total": self.total,
            "arguments": self.query.arguments(),
            "next_cursor": self.next_cursor,
        }


def archived_message(row: RowMapping) -> dict[str, Any]:
    """A stored message as datagrepper gives it: body, headers, id, priority, queue, topic."""
    headers = dict(row["headers"])
    headers.setdefault("sent-at", row["timestamp"].isoformat(timespec="seconds"))
    body: Any = row["body"]
    if row["content_type"] == "application/json":
        with contextlib.suppress(ValueError):
            body = json.loads(body)
    return {
        "body": body,
        "headers": headers,
        "id": row["msg_id"],
        "priority": row["priority"],
        "queue": None,
        "topic": row["topic"],
    }


def search(connection: Connection, query: Search) -> Page:
    """Run ``query``.

    Raises:
        SearchError: an offset page past :data:`OFFSET_LIMIT` rows.
    """
    where = conditions(query)
    descending = query.order == "desc"
    statement = select(M).where(*where)
    if query.cursor is not None:
        at, row = query.decoded_cursor()
        key = tuple_(M.c.timestamp, M.c.id)
        statement = statement.where(key < tuple_(at, row) if descending else key > tuple_(at, row))
        offset = 0
    else:
        offset = (query.page - 1) * query.rows_per_page
        if offset + query.rows_per_page > OFFSET_LIMIT:
            raise SearchError(
                f"page={query.page} goes past the first {OFFSET_LIMIT:,} rows; page through "
                "deeper results with the cursor: pass the next_cursor of a page as cursor="
            )
    order = (M.c.timestamp.desc(), M.c.id.desc()) if descending else (M.c.timestamp, M.c.id)
    rows = list(
        connection.execute(
            statement.order_by(*order).offset(offset).limit(query.rows_per_page)
        ).mappings()
    )
    total = connection.execute(select(func.count()).select_from(M).where(*where)).scalar_one()
    next_cursor = None
    if len(rows) == query.rows_per_page:
        last = rows[-1]
        next_cursor = make_cursor(last["timestamp"], last["id"], query.order)
    return Page(rows, int(total), query, next_cursor)


def find_message(connection: Connection, msg_id: str) -> RowMapping | None:
    """The stored message with id ``msg_id``, or None."""
    return connection.execute(select(M).where(M.c.msg_id == msg_id)).mappings().first()
