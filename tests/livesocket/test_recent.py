"""The recent past of a pattern, which pages load before their first live message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from moksha.hub import CentralMokshaHub
from moksha.livesocket.history import History, MemoryHistory
from moksha.livesocket.history_sql import SqlHistory


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sql"])
async def history_and_clock(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[History, Clock]]:
    clock = Clock()
    history: History
    if request.param == "memory":
        history = MemoryHistory(100, 300.0, clock=clock)
    else:
        history = SqlHistory(f"sqlite:///{tmp_path}/h.sqlite", 100, 300.0, clock=clock)
    async with history:
        yield history, clock


async def test_recent_gives_the_newest_matching_events_oldest_first_with_their_time(
    history_and_clock: tuple[History, Clock],
) -> None:
    history, clock = history_and_clock
    for n in range(10):
        clock.now += 1
        await history.append("org.a" if n % 2 else "org.b", str(n))
    events = await history.recent("org.a", 3)
    assert [e.payload for e in events] == ["5", "7", "9"]
    assert [e.time for e in events] == [1_000_006.0, 1_000_008.0, 1_000_010.0]
    both = await history.recent("org.*", 4)
    assert [e.payload for e in both] == ["6", "7", "8", "9"]
    assert [e.payload for e in await history.recent("org.#", 100, max_age=2.5)] == ["7", "8", "9"]
    assert await history.recent("other.#", 10) == []


async def test_the_history_endpoint_answers_recent_events_and_refuses_bad_requests() -> None:
    config = {
        "moksha.backends": "memory",
        "moksha.livesocket.backend": "websocket",
        "moksha.livesocket.websocket.port": 0,
        "moksha.livesocket.protected": "secret.#",
        "moksha.livesocket.token_secret": "s" * 40,
    }
    async with CentralMokshaHub(config, [], []) as hub:
        for n in range(5):
            await hub.publish("demo.count", {"n": n})
        await hub.publish("secret.plans", {"n": 99})
        async with httpx.AsyncClient(base_url=hub.livesocket_url) as http:
            recent = await http.get("/livesocket/history", params={"topic": "#", "count": 3})
            none = await http.get("/livesocket/history", params={"topic": "demo.#", "count": 0})
            no_topic = await http.get("/livesocket/history")
            bad = await http.get("/livesocket/history", params={"topic": "a", "count": "x"})
    assert recent.status_code == 200
    events = recent.json()["events"]
    # The protected topic is left out: no token grants it.
    assert [e["body"] for e in events] == [{"n": 2}, {"n": 3}, {"n": 4}]
    assert all(e["topic"] == "demo.count" and e["time"] > 0 and e["id"] for e in events)
    assert none.json() == {"events": []}
    assert no_topic.status_code == 400 and "?topic=" in no_topic.json()["error"]
    assert bad.status_code == 400 and "count" in bad.json()["error"]
