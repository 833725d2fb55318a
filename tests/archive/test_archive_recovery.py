"""A live-socket client whose gap is larger than the history recovers it from the archive."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from sqlalchemy import func, select

from moksha.archive import ArchiveStore
from moksha.archive.models import MESSAGES
from moksha.archive.recovery import ArchiveBackedHistory
from moksha.hub import CentralMokshaHub
from moksha.livesocket import MemoryHistory
from moksha.message import Message
from support import TIMEOUT, until


async def test_the_archive_fills_what_the_history_evicted(store: ArchiveStore) -> None:
    history = ArchiveBackedHistory(MemoryHistory(max_per_topic=2), store)
    ids = []
    for n in range(8):
        message = Message("news.local" if n % 2 else "news.world", {"n": n})
        if n < 6:  # the recorder has not written the newest two yet: the history has them
            store.record([message])
        event_id = await history.append(message.topic, json.dumps({"n": n}))
        history.seen(event_id, message.topic, message.id)
        ids.append(event_id)

    plain, plain_complete = await history.inner.since("news.#", ids[0])
    events, complete = await history.since("news.#", ids[0])
    local, local_complete = await history.since("news.local", ids[1])
    assert not plain_complete and len(plain) == 4  # the history alone: reload
    assert complete and [e.id for e in events] == ids[1:]
    assert [json.loads(e.payload)["n"] for e in events] == list(range(1, 8))
    assert local_complete and [json.loads(e.payload)["n"] for e in local] == [3, 5, 7]


async def test_without_the_missed_messages_in_the_archive_the_client_reloads(
    store: ArchiveStore,
) -> None:
    history = ArchiveBackedHistory(MemoryHistory(max_per_topic=1), store)
    ids = []
    for n in range(5):
        message = Message("news.local", n)
        if n in (0, 4):  # 1, 2 and 3 never reached the archive (it records other topics)
            store.record([message])
        event_id = await history.append(message.topic, str(n))
        history.seen(event_id, message.topic, message.id)
        ids.append(event_id)
    events, complete = await history.since("news.#", ids[0])
    assert not complete
    assert [e.payload for e in events] == ["4"]


async def frames_until_recovered(socket: Any) -> list[dict[str, Any]]:
    frames = []
    async with asyncio.timeout(TIMEOUT):
        while True:
            frame = json.loads(await socket.recv())
            frames.append(frame)
            if frame["topic"] == "__recovered__":
                return frames


async def test_a_reconnecting_client_gets_recovered_true_from_the_archive(
    archive_config: dict[str, Any],
) -> None:
    config = {
        **archive_config,
        "moksha.livesocket.backend": "websocket",
        "moksha.livesocket.websocket.port": 0,
        "moksha.livesocket.history.size": 2,
    }
    store = ArchiveStore(archive_config["moksha.archive.url"])

    def archived() -> int:
        with store.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(MESSAGES)).scalar_one())

    async with CentralMokshaHub(config, [], []) as hub:
        url = hub.livesocket_url.replace("http://", "ws://") + "/livesocket/ws"  # type: ignore[union-attr]
        async with websockets.connect(url) as socket:
            subscribe = {"topic": "__topic_subscribe__", "body": "news.#"}
            await socket.send(json.dumps(subscribe))
            live = hub.livesocket
            assert live is not None
            await until(lambda: any(c.session.subscriptions for c in live.clients))
            await hub.publish("news.local", 0)
            first = json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))
        for n in range(1, 7):
            await hub.publish("news.local", n)
        await until(lambda: archived() == 7)
        async with websockets.connect(url) as socket:
            resubscribe = {"pattern": "news.#", "since": first["id"]}
            await socket.send(json.dumps({"topic": "__topic_subscribe__", "body": resubscribe}))
            frames = await frames_until_recovered(socket)
    store.close()
    assert first["body"] == 0
    assert [f["body"] for f in frames[:-1]] == [1, 2, 3, 4, 5, 6]
    assert frames[-1]["body"] == {"pattern": "news.#", "recovered": True}
