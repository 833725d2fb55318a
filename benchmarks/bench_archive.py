"""The archive: recording throughput against raw SQLAlchemy Core, and search latency at 1M rows.

Recording (SQLite and PostgreSQL): ``--messages`` messages of ~200 bytes
(a topic among 20, two fedora-messaging user headers, a JSON body) written in
batches of ``--batch`` (the recorder's ``moksha.archive.batch_size``), one
transaction per batch, into freshly emptied tables.  Two sides, same run:

* *raw executemany* (the baseline): ``connection.execute(insert(table),
  rows)`` of the very rows the archive stores (the messages' rows and their
  users' rows), prepared beforehand: no conversion, no conflict handling;
* *archive*: ``ArchiveStore.record(batch)`` from the ``Message`` objects —
  conversion to rows, ``ON CONFLICT DO NOTHING``, the users rows.

Target: archive >= 0.8 x raw.

Search (PostgreSQL): a database of ``--rows`` (1,000,000) generated messages
over the last 30 days (50 topics, one user in ten messages among 1,000 users)
made once and kept (``--fresh`` remakes it); each search runs ``--queries``
times through :func:`moksha.archive.query.search` (the page and its total),
p50/p99 reported.  Target: p99 ≤ 50 ms for one topic over the last day
(page 1), one user, and a deep page (cursor 10,000 rows into one topic).
Also the archive's size per message.

    chrt -f 10 .venv/bin/python benchmarks/bench_archive.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from sqlalchemy import create_engine, delete, func, insert, select, text

from moksha.archive import ArchiveStore
from moksha.archive.models import DEAD, MESSAGES, PACKAGES, USERS
from moksha.archive.query import Search, search
from moksha.message import JSON, Message, encode_body

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RECORD_DB = "bench_archive_i14_record"
SEARCH_DB = "bench_archive_i14_search"


def pg_url(name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def ensure_database(name: str, fresh: bool) -> None:
    server = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first()
        if exists and fresh:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            exists = None
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    server.dispose()


def messages(count: int) -> list[Message]:
    """Messages as a broker hands them to the recorder: the payload in bytes."""
    now = time.time()
    return [
        Message(
            f"org.example.prod.app{i % 20}.thing.happened",
            payload=encode_body({"n": i, "user": f"user{i % 1000}", "text": "x" * 120}),
            content_type=JSON,
            headers={
                f"fedora_messaging_user_user{i % 1000}": "true",
                f"fedora_messaging_user_user{(i + 1) % 1000}": "true",
                "fedora_messaging_severity": "20",
            },
            timestamp=now - (count - i),
        )
        for i in range(count)
    ]


def empty(store: ArchiveStore) -> None:
    """Empty the tables; TRUNCATE on PostgreSQL, so no side inherits the other's dead rows."""
    with store.engine.begin() as connection:
        if store.dialect == "postgresql":
            names = ", ".join(table.name for table in (USERS, PACKAGES, DEAD, MESSAGES))
            connection.execute(text(f"TRUNCATE {names}"))
            return
        for table in (USERS, PACKAGES, DEAD, MESSAGES):
            connection.execute(delete(table))


def record_case(url: str, count: int, batch: int, repeats: int) -> tuple[float, float, float]:
    """(raw msgs/s, archive msgs/s, bytes per message) medians."""
    store = ArchiveStore(url)
    sample = messages(count)
    batches = [sample[i : i + batch] for i in range(0, count, batch)]
    prepared = []
    for chunk in batches:
        rows = store.rows(chunk)
        users = [user for row in rows for user in row.users]
        prepared.append(([row.message for row in rows], users))
    raw_rates, ours_rates = [], []
    size = 0.0

    def raw() -> None:
        for rows, users in prepared:
            with store.engine.begin() as connection:
                connection.execute(insert(MESSAGES), rows)
                connection.execute(insert(USERS), users)

    def ours() -> None:
        for chunk in batches:
            store.record(chunk)

    for repeat in range(repeats):
        # The sides take turns going first: neither always meets a warmer database.
        sides = [(raw, raw_rates), (ours, ours_rates)]
        for side, rates in sides if repeat % 2 == 0 else reversed(sides):
            empty(store)
            started = time.perf_counter()
            side()
            rates.append(count / (time.perf_counter() - started))
            if side is ours:
                size = archive_bytes(store) / count
    store.close()
    return statistics.median(raw_rates), statistics.median(ours_rates), size


def archive_bytes(store: ArchiveStore) -> float:
    with store.engine.connect() as connection:
        if store.dialect == "postgresql":
            query = text(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                "WHERE c.relname LIKE 'moksha_archive_%' AND c.relkind = 'r'"
            )
            return float(connection.execute(query).scalar_one())
        pages = connection.execute(text("PRAGMA page_count")).scalar_one()
        page_size = connection.execute(text("PRAGMA page_size")).scalar_one()
        return float(pages * page_size)


GENERATE = """
INSERT INTO moksha_archive_messages
    (msg_id, topic, category, timestamp, headers, body, content_type, agent, priority)
SELECT
    'gen-' || n,
    'org.example.prod.app' || (n % 50) || '.thing.happened',
    'app' || (n % 50),
    now() - (:rows - n) * (interval '30 days' / :rows),
    CASE WHEN n % 10 = 0
         THEN jsonb_build_object('fedora_messaging_user_user' || (n / 10 % 1000), 'true')
         ELSE '{}'::jsonb END,
    '{"n":' || n || ',"text":"' || repeat('x', 120) || '"}',
    'application/json',
    NULL,
    0
FROM generate_series(1, :rows) AS n
"""
GENERATE_USERS = """
INSERT INTO moksha_archive_users (name, msg_id)
SELECT 'user' || (n / 10 % 1000), 'gen-' || n FROM generate_series(10, :rows, 10) AS n
"""


def fill_search_database(url: str, rows: int) -> ArchiveStore:
    store = ArchiveStore(url)
    with store.engine.connect() as connection:
        have = connection.execute(select(func.count()).select_from(MESSAGES)).scalar_one()
    if have != rows:
        empty(store)
        print(f"generating {rows:,} messages ...", flush=True)
        started = time.perf_counter()
        with store.engine.begin() as connection:
            connection.execute(text(GENERATE), {"rows": rows})
            connection.execute(text(GENERATE_USERS), {"rows": rows})
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE"))
        print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
    return store


def timed(store: ArchiveStore, query: Search, times: int) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, total) of ``search(query)``."""
    spent = []
    total = 0
    with store.engine.connect() as connection:
        for _ in range(times):
            started = time.perf_counter()
            page = search(connection, query)
            spent.append((time.perf_counter() - started) * 1000)
            total = page.total
    spent.sort()
    return spent[len(spent) // 2], spent[min(len(spent) - 1, int(len(spent) * 0.99))], total


def deep_cursor(store: ArchiveStore, query: Search, rows: int) -> Search:
    """``query`` continued ``rows`` rows deep (cursor followed page by page, not timed)."""
    deep = query
    with store.engine.connect() as connection:
        for _ in range(rows // query.rows_per_page):
            page = search(connection, deep)
            assert page.next_cursor is not None
            deep = query.with_cursor(page.next_cursor)
    return deep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--fresh", action="store_true", help="regenerate the search database")
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()

    print(
        f"recording: {args.messages:,} messages, batches of {args.batch}, median of {args.repeats}"
    )
    print(f"{'database':<12}{'raw msgs/s':>14}{'archive msgs/s':>16}{'ratio':>8}{'B/msg':>8}")
    with TemporaryDirectory() as folder:
        sqlite_url = f"sqlite:///{Path(folder) / 'bench.sqlite'}"
        ensure_database(RECORD_DB, fresh=True)
        for name, url in (("sqlite", sqlite_url), ("postgresql", pg_url(RECORD_DB))):
            raw, ours, size = record_case(url, args.messages, args.batch, args.repeats)
            verdict = "PASS" if ours >= 0.8 * raw else "MISS"
            print(f"{name:<12}{raw:>14,.0f}{ours:>16,.0f}{ours / raw:>8.2f}{size:>8.0f}  {verdict}")

    if args.skip_search:
        return
    ensure_database(SEARCH_DB, fresh=args.fresh)
    store = fill_search_database(pg_url(SEARCH_DB), args.rows)
    size = archive_bytes(store) / args.rows
    now = datetime.now(UTC)
    one_topic = Search(
        topic=("org.example.prod.app7.thing.happened",), start=now - timedelta(days=1)
    )
    cases: list[tuple[str, Callable[[], Search]]] = [
        ("one topic, last day, page 1", lambda: one_topic),
        ("one user", lambda: Search(user=("user123",))),
        (
            "topic pattern app1.#, last day",
            lambda: Search(topic=("org.example.prod.app1.#",), start=now - timedelta(days=1)),
        ),
        (
            "contains text, last hour",
            lambda: Search(contains=('"n":99',), start=now - timedelta(hours=1)),
        ),
        (
            "deep page: cursor 10,000 rows into one topic",
            lambda: deep_cursor(
                store,
                Search(topic=("org.example.prod.app3.thing.happened",), rows_per_page=100),
                10_000,
            ),
        ),
        ("no filter, page 1 (total counts every row)", lambda: Search()),
    ]
    print(
        f"\nsearch on PostgreSQL, {args.rows:,} messages, {size:.0f} bytes/message on disk, "
        f"{args.queries} runs each"
    )
    print(f"{'search':<48}{'p50 ms':>8}{'p99 ms':>8}{'total':>10}")
    for name, make in cases:
        query = make()
        p50, p99, total = timed(store, query, args.queries)
        verdict = "PASS" if p99 <= 50 else "MISS"
        print(f"{name:<48}{p50:>8.1f}{p99:>8.1f}{total:>10,}  {verdict}")
    store.close()


if __name__ == "__main__":
    main()
