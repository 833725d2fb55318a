"""The per-topic volume chart of the archive's search page: messages per hour (or day).

Counted in the database (one ``GROUP BY`` on the time index), drawn as SVG
bars on the server: no script, nothing from elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from moksha.archive.models import MESSAGES
from moksha.archive.query import Search, conditions

__all__ = ["Volume", "volume_chart"]

TOPICS_SHOWN = 5
BUCKETS = 48


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    series: int
    label: str


@dataclass(frozen=True, slots=True)
class Volume:
    unit: str
    topics: list[str]
    bars: list[Bar]
    width: int = 480
    height: int = 120


_FORMATS = {"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "month": "%Y-%m"}


def _bucket(connection: Connection, unit: str) -> Any:
    column = MESSAGES.c.timestamp
    if connection.dialect.name == "postgresql":
        return func.to_char(
            func.date_trunc(unit, column),
            {"hour": "YYYY-MM-DD HH24:00", "day": "YYYY-MM-DD", "month": "YYYY-MM"}[unit],
        )
    return func.strftime(_FORMATS[unit], column)


def volume_chart(connection: Connection, query: Search) -> Volume | None:
    """Messages per hour, day or month for the search's busiest topics.

    The range is the search's (the last 48 hours when it gives no start),
    narrowed to its first and last matching message; the unit follows its length.
    """
    end = query.end or datetime.now(UTC)
    start = query.start or end - timedelta(hours=BUCKETS)
    where = conditions(replace(query, start=start, end=end))
    span = select(func.min(MESSAGES.c.timestamp), func.max(MESSAGES.c.timestamp)).where(*where)
    first, last = connection.execute(span).one()
    if first is None:
        return None
    length = last - first
    unit = "hour" if length <= timedelta(hours=BUCKETS) else "day"
    if length > timedelta(days=366):
        unit = "month"
    bucket = _bucket(connection, unit).label("bucket")
    statement = (
        select(MESSAGES.c.topic, bucket, func.count().label("n"))
        .where(*where)
        .group_by(MESSAGES.c.topic, bucket)
    )
    counts = connection.execute(statement).all()
    if not counts:
        return None
    totals: dict[str, int] = {}
    for topic, _, n in counts:
        totals[topic] = totals.get(topic, 0) + n
    topics = sorted(totals, key=lambda t: -totals[t])[:TOPICS_SHOWN]
    buckets = sorted({str(row[1]) for row in counts if row[0] in topics})
    highest = max(n for topic, _, n in counts if topic in topics)
    width, height = 480, 120
    slot = width / max(len(buckets), 1)
    bar_width = slot / (len(topics) + 1)
    bars = []
    for topic, when, n in counts:
        if topic not in topics:
            continue
        series = topics.index(topic)
        h = height * n / highest
        x = buckets.index(str(when)) * slot + series * bar_width
        bars.append(Bar(x, height - h, bar_width, h, series, f"{topic} {when}: {n}"))
    return Volume(unit, topics, bars, width, height)
