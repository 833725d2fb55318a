"""The live-socket history: ids, recovery after a gap, bounds, and the SQL store's persistence.

The contract tests run on both stores; the SQL ones check what only a
database store does: surviving a restart, writing behind, pruning the file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from moksha.config import Config
from moksha.errors import ConfigError, MokshaError
from moksha.livesocket.history import (
    History,
    MemoryHistory,
    history_from_config,
    split_event_id,
)
from moksha.livesocket.history_sql import EVENTS, SqlHistory

MakeHistory = Callable[..., History]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "sql"])
async def make_history(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[MakeHistory]:
    """Builds histories of one kind with the test's clock; closes them after the test."""
    made: list[History] = []

    def make(max_per_topic: int = 100, max_age: float = 300.0) -> History:
        history: History
        if request.param == "memory":
            history = MemoryHistory(max_per_topic, max_age, clock=clock)
        else:
            url = f"sqlite:///{tmp_path}/history-{len(made)}.sqlite"
            history = SqlHistory(url, max_per_topic, max_age, clock=clock)
        made.append(history)
        return history

    yield make
    for history in made:
        await history.aclose()


def seq_of(event_id: str) -> int:
    parsed = split_event_id(event_id)
    assert parsed is not None, event_id
    return parsed[1]


def epoch_of(event_id: str) -> str:
    parsed = split_event_id(event_id)
    assert parsed is not None, event_id
    return parsed[0]


def db_counts(path: Path) -> dict[str, int]:
    """Events per topic as the database file holds them right now."""
    with sqlite3.connect(path) as db:
        rows = db.execute(f"SELECT topic, count(*) FROM {EVENTS.name} GROUP BY topic").fetchall()
    return dict(rows)


# --- both stores ---------------------------------------------------------------------------


async def test_ids_increase_over_every_topic(make_history: MakeHistory) -> None:
    history = make_history()
    ids = [await history.append(f"org.t{i % 3}", str(i)) for i in range(10)]

    assert len({epoch_of(i) for i in ids}) == 1
    seqs = [seq_of(i) for i in ids]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10


async def test_since_returns_what_was_missed_matching_the_pattern_in_order(
    make_history: MakeHistory,
) -> None:
    history = make_history()
    seen = await history.append("org.a.x", '"seen"')
    published = [
        ("org.a.x", '"1"'),
        ("other.x", '"2"'),
        ("org.b.x", '"3"'),
        ("org.a.x.deep", '"4"'),
        ("org.a.x", '"5"'),
    ]
    ids = [await history.append(topic, payload) for topic, payload in published]

    async def missed(pattern: str) -> list[tuple[str, str, str]]:
        events, complete = await history.since(pattern, seen)
        assert complete
        return [(e.id, e.topic, e.payload) for e in events]

    assert await missed("org.a.x") == [(ids[0], "org.a.x", '"1"'), (ids[4], "org.a.x", '"5"')]
    assert [t for _, t, _ in await missed("org.*.x")] == ["org.a.x", "org.b.x", "org.a.x"]
    assert [p for _, _, p in await missed("org.#")] == ['"1"', '"3"', '"4"', '"5"']
    assert [i for i, _, _ in await missed("#")] == ids
    assert await missed("nothing.here") == []
    # From further on, only what came later.
    events, complete = await history.since("org.#", ids[2])
    assert [e.payload for e in events] == ['"4"', '"5"'] and complete


async def test_the_position_is_the_newest_id_and_a_resume_from_it_misses_nothing(
    make_history: MakeHistory,
) -> None:
    history = make_history()
    await history.append("org.a", "1")
    newest = await history.append("org.b", "2")
    position = await history.position()
    later = await history.append("org.a", "3")

    assert position == newest
    events, complete = await history.since("org.#", position)  # type: ignore[arg-type]
    assert [(e.id, e.payload) for e in events] == [(later, "3")] and complete


async def test_a_new_store_has_a_position_before_its_first_event(make_history: MakeHistory) -> None:
    history = make_history()
    position = await history.position()
    first = await history.append("org.a", "1")

    events, complete = await history.since("org.a", position)  # type: ignore[arg-type]
    assert [e.id for e in events] == [first] and complete


async def test_nothing_missed_is_an_empty_complete_answer(make_history: MakeHistory) -> None:
    history = make_history()
    last = await history.append("org.a", "1")

    assert await history.since("#", last) == ([], True)


async def test_ids_of_another_store_or_not_ids_are_unknown(make_history: MakeHistory) -> None:
    history, other = make_history(), make_history()
    await history.append("org.a", "1")
    foreign = await other.append("org.a", "1")
    mine = await history.append("org.a", "2")
    epoch = epoch_of(mine)
    assert epoch != epoch_of(foreign)

    for last_id in [foreign, "", "nonsense", f"{epoch}-", f"{epoch}-x", f"{epoch}-01", "-1"]:
        assert await history.since("#", last_id) == ([], False), last_id
    # An id this store never issued yet cannot be trusted either.
    assert await history.since("#", f"{epoch}-{seq_of(mine) + 1}") == ([], False)


async def test_events_evicted_by_size_make_the_answer_incomplete(
    make_history: MakeHistory,
) -> None:
    history = make_history(max_per_topic=3)
    start = await history.append("org.b", "b0")
    a = [await history.append("org.a", f"a{i}") for i in range(5)]
    await history.append("org.b", "b1")

    events, complete = await history.since("org.a", start)
    assert [e.payload for e in events] == ["a2", "a3", "a4"] and not complete
    # A client that saw a1 missed nothing that is gone.
    events, complete = await history.since("org.a", a[1])
    assert [e.payload for e in events] == ["a2", "a3", "a4"] and complete
    # Another topic's evictions do not concern a client of org.b.
    events, complete = await history.since("org.b", start)
    assert [e.payload for e in events] == ["b1"] and complete
    # A wildcard covering org.a does.
    assert (await history.since("org.*", start))[1] is False


async def test_events_older_than_max_age_make_the_answer_incomplete(
    make_history: MakeHistory, clock: Clock
) -> None:
    history = make_history(max_age=150)
    start = await history.append("org.b", "b0")
    await history.append("org.a", "old")
    clock.now += 100
    middle = await history.append("org.b", "b1")
    clock.now += 100
    await history.append("org.a", "new")

    events, complete = await history.since("org.a", start)
    assert [e.payload for e in events] == ["new"] and not complete
    events, complete = await history.since("org.b", start)
    assert [e.payload for e in events] == ["b1"] and complete
    # Having seen past the expired event, nothing is missing.
    assert [e.payload for e in (await history.since("org.#", middle))[0]] == ["new"]
    assert (await history.since("org.#", middle))[1] is True


async def test_a_topic_expired_whole_is_still_detected(
    make_history: MakeHistory, clock: Clock
) -> None:
    history = make_history(max_age=60)
    start = await history.append("org.start", "s")
    gone = await history.append("org.gone", "g")
    clock.now += 1000
    await history.append("org.live", "l")

    assert await history.since("org.gone", start) == ([], False)
    # A client that saw it misses nothing.
    events, complete = await history.since("org.#", gone)
    assert [e.payload for e in events] == ["l"] and complete


async def test_concurrent_appends_get_unique_increasing_ids(make_history: MakeHistory) -> None:
    history = make_history()

    async def publisher(n: int) -> list[str]:
        ids = []
        for i in range(20):
            ids.append(await history.append(f"org.p{n}", f"{n}:{i}"))
            if i % 5 == 0:
                await asyncio.sleep(0)  # interleave with the other publishers
        return ids

    per_task = await asyncio.gather(*(publisher(n) for n in range(50)))

    for ids in per_task:
        assert [seq_of(i) for i in ids] == sorted(seq_of(i) for i in ids)
    everything = [i for ids in per_task for i in ids]
    assert len(set(everything)) == 1000
    events, complete = await history.since("#", f"{epoch_of(everything[0])}-0")
    assert complete and sorted(everything, key=seq_of) == [e.id for e in events]


# --- memory only ---------------------------------------------------------------------------


async def test_memory_keeps_at_most_max_topics_and_detects_dropped_ones() -> None:
    history = MemoryHistory(max_topics=2)
    start = await history.append("org.a", "a1")
    await history.append("org.a", "a2")
    after_a = await history.append("org.b", "b")
    await history.append("org.c", "c")  # org.a, the least recently appended, goes

    events, complete = await history.since("#", start)
    assert [e.topic for e in events] == ["org.b", "org.c"] and not complete
    assert await history.since("org.a", start) == ([], False)
    events, complete = await history.since("org.c", after_a)
    assert [e.payload for e in events] == ["c"] and complete


# --- SQL only ------------------------------------------------------------------------------


async def test_sql_history_survives_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/history.sqlite"
    async with SqlHistory(url) as history:
        seen = await history.append("org.a", "1")
        missed = [await history.append("org.a", "2"), await history.append("org.b", "3")]

    async with SqlHistory(url) as history:
        events, complete = await history.since("org.#", seen)
        assert [e.id for e in events] == missed and complete
        assert [e.payload for e in events] == ["2", "3"]
        after = await history.append("org.a", "4")
    assert epoch_of(after) == epoch_of(seen)
    assert seq_of(after) > seq_of(missed[-1])


async def test_sql_appends_write_behind_and_since_sees_them(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    async with SqlHistory(f"sqlite:///{path}", flush_interval=60) as history:
        start = await history.append("org.a", "1")
        await history.append("org.a", "2")
        assert db_counts(path) == {}  # queued, not written

        events, complete = await history.since("org.a", start)
        assert [e.payload for e in events] == ["2"] and complete
        assert db_counts(path) == {"org.a": 2}


async def test_sql_writes_a_full_batch_without_waiting(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    async with SqlHistory(f"sqlite:///{path}", flush_interval=60, flush_rows=5) as history:
        for i in range(5):
            await history.append("org.a", str(i))
        deadline = time.monotonic() + 5
        while db_counts(path) != {"org.a": 5} and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # bounded poll of another connection's view
        assert db_counts(path) == {"org.a": 5}


async def test_sql_file_is_pruned_per_topic_by_size_and_age(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "history.sqlite"
    url = f"sqlite:///{path}"
    async with SqlHistory(url, max_per_topic=3, max_age=60, clock=clock) as history:
        start = await history.append("org.old", "o")
        for i in range(10):
            await history.append("org.a", str(i))
        await history.append("org.b", "b")
        await history.since("#", start)  # writes the queue out
        assert db_counts(path) == {"org.old": 1, "org.a": 3, "org.b": 1}

        clock.now += 30
        await history.append("org.a", "later")
        clock.now += 45  # org.old, the first nine of org.a and org.b are now too old
        await history.since("#", start)
        assert db_counts(path) == {"org.a": 1}

    async with SqlHistory(url, max_per_topic=3, max_age=60, clock=clock) as history:
        assert (await history.since("org.b", start))[1] is False
        events, complete = await history.since("org.a", start)
        assert [e.payload for e in events] == ["later"] and not complete


async def test_sql_aclose_writes_the_queue(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    history = SqlHistory(f"sqlite:///{path}", flush_interval=60)
    for i in range(5):
        await history.append("org.a", str(i))
    await history.aclose()

    assert db_counts(path) == {"org.a": 5}
    with pytest.raises(MokshaError):
        await history.append("org.a", "after close")


async def test_sql_drops_the_oldest_unwritten_events_when_the_queue_is_full(
    tmp_path: Path,
) -> None:
    # With flush_rows=1 the queue holds at most 20 events; no await yields to the
    # writer between these appends, so the oldest ten cannot be written.
    async with SqlHistory(f"sqlite:///{tmp_path}/history.sqlite", flush_rows=1) as history:
        start = await history.append("org.b", "start")
        ids = [await history.append("org.a", str(i)) for i in range(30)]

        events, complete = await history.since("org.a", start)
        assert [e.id for e in events] == ids[-20:] and not complete
        events, complete = await history.since("org.a", ids[9])
        assert [e.id for e in events] == ids[-20:] and complete


async def test_sql_store_not_closed_cleanly_starts_a_new_epoch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/history.sqlite"
    first = SqlHistory(url)
    second = SqlHistory(url)
    try:
        seen = await first.append("org.a", "1")
        await first.since("#", seen)
        # As after a crash: the store is still marked open, so ids from before
        # cannot be trusted (events queued then may never have been written).
        after = await second.append("org.a", "2")
        assert epoch_of(after) != epoch_of(seen) and seq_of(after) > seq_of(seen)
        assert await second.since("org.a", seen) == ([], False)
    finally:
        await first.aclose()
        await second.aclose()


# --- configuration -------------------------------------------------------------------------


async def test_config_without_url_keeps_history_in_memory() -> None:
    history = history_from_config(
        Config.coerce({"moksha.livesocket.history.size": "2", "moksha.livesocket.history.age": 9})
    )
    assert isinstance(history, MemoryHistory)
    start = await history.append("org.a", "0")
    for i in range(3):
        await history.append("org.a", str(i + 1))
    events, complete = await history.since("org.a", start)
    assert [e.payload for e in events] == ["2", "3"] and not complete


async def test_config_with_a_sqlite_url_persists_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    config = {"moksha.livesocket.history.url": "sqlite:///var/history.sqlite"}

    async with history_from_config(config) as history:
        assert isinstance(history, SqlHistory)
        seen = await history.append("org.a", "1")
        await history.append("org.a", "2")
    async with history_from_config(config) as history:
        events, complete = await history.since("org.a", seen)
        assert [e.payload for e in events] == ["2"] and complete
    assert (tmp_path / "var" / "history.sqlite").is_file()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("moksha.livesocket.history.url", "not a url"),
        ("moksha.livesocket.history.url", "postgres//user:hunter2@host/db"),
        ("moksha.livesocket.history.url", "nosuchdb://user:hunter2@host/db"),
        ("moksha.livesocket.history.url", "sqlite:///no/such/directory/history.sqlite"),
        ("moksha.livesocket.history.size", "many"),
        ("moksha.livesocket.history.size", 0),
        ("moksha.livesocket.history.age", "-5"),
    ],
)
def test_bad_config_values_name_their_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        history_from_config(Config.coerce({key: value}))
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key} (from code): ")
    assert "hunter2" not in str(caught.value)
