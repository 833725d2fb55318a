"""The cluster store's contract, on every store: what several nodes rely on sharing."""

from __future__ import annotations

import asyncio
import time

from cluster_nodes import REDIS_URL, drop_redis_keys, unique_prefix

from moksha.cluster import Bounds, ClusterStore, store_from_url
from moksha.livesocket.history_cluster import ClusterHistory


async def test_every_node_asking_with_a_message_id_gets_the_same_offset(
    store: ClusterStore,
) -> None:
    now = time.time()
    first = await store.append("org.a", '"one"', "msg-1", now)
    again = await store.append("org.a", '"one"', "msg-1", now)
    second = await store.append("org.a", '"two"', "msg-2", now)
    keyless = await store.append("org.a", '"three"', None, now)

    assert again == first
    assert first < second < keyless
    events, complete = await store.since("org.a", first - 1, now)
    assert [e.payload for e in events] == ['"one"', '"two"', '"three"']  # stored once
    assert complete


async def test_the_position_is_the_newest_offset_on_every_node(store: ClusterStore) -> None:
    history, other_node = ClusterHistory(store), ClusterHistory(store)
    newest = await history.append("org.a", '"1"', "msg-p1")
    position = await other_node.position()
    later = await history.append("org.a", '"2"', "msg-p2")

    assert position == newest
    events, complete = await other_node.since("org.a", position)
    assert [e.id for e in events] == [later] and complete


async def test_offsets_become_visible_in_order_under_concurrent_appends(
    store: ClusterStore,
) -> None:
    # A replay that returned offset n before n-1 was written would let a client resume
    # after n and never get n-1: what a reader sees must only ever grow at its end.
    store.bounds = Bounds(size=1000, age=600.0, topics=4)
    appended = 0

    async def append(node: int) -> None:
        nonlocal appended
        for n in range(100):
            await store.append("org.load", '"x"', f"node{node}-{n}", time.time())
            appended += 1

    async def read() -> list[int]:
        late: list[int] = []
        seen: set[int] = set()
        while appended < 400:
            events, _ = await store.since("org.load", 0, time.time())
            new = {event.offset for event in events} - seen
            late += [offset for offset in new if seen and offset < max(seen)]
            seen |= new
            await asyncio.sleep(0)
        return late

    reader = asyncio.create_task(read())
    await asyncio.gather(*(append(node) for node in range(4)))
    assert await reader == []


async def test_many_appends_at_once_all_get_an_offset(store: ClusterStore) -> None:
    # A burst of messages on a busy node: more in flight than the client has connections.
    now = time.time()
    offsets = await asyncio.gather(
        *(store.append("org.burst", str(n), f"burst-{n}", now) for n in range(300))
    )
    assert len(set(offsets)) == 300


async def test_since_merges_matching_topics_in_offset_order(store: ClusterStore) -> None:
    now = time.time()
    start = await store.append("org.x", '"start"', None, now)
    for n, topic in enumerate(["org.b", "org.c", "other.d", "org.b"]):
        await store.append(topic, str(n), None, now)

    events, complete = await store.since("org.*", start, now)

    assert [(e.topic, e.payload) for e in events] == [
        ("org.b", "0"),
        ("org.c", "1"),
        ("org.b", "3"),
    ]
    assert [e.offset for e in events] == sorted(e.offset for e in events)
    assert complete
    assert await store.epoch() == await store.epoch()


async def test_history_cut_by_size_age_or_topic_count_says_incomplete(store: ClusterStore) -> None:
    now = time.time()
    start = await store.append("org.keep", '"start"', None, now)
    for n in range(5):  # the bound is 3 per topic
        await store.append("org.size", str(n), None, now)
    events, complete = await store.since("org.size", start, now)
    assert [e.payload for e in events] == ["2", "3", "4"] and not complete
    events, complete = await store.since("org.size", events[0].offset - 1, now)
    assert len(events) == 3 and complete  # the client saw what was evicted

    # An hour later everything is older than the bound (60 s).
    assert (await store.since("org.size", start, now + 3600))[1] is False
    # Past the counter: not an id this cluster gave.
    top = await store.append("org.keep", '"top"', None, now)
    assert await store.since("org.keep", top + 10, now) == ([], False)

    # More topics than the bound (4): the least recently appended are dropped whole.
    for n in range(6):
        await store.append(f"org.t{n}", str(n), None, now)
    events, complete = await store.since("org.#", start, now)
    assert not complete
    recent = await store.recent("org.#", 2, now - 60)
    assert [e.payload for e in recent] == ["4", "5"]


async def test_heartbeats_list_the_nodes_alive_until_they_expire_or_leave(
    store: ClusterStore,
) -> None:
    await store.heartbeat("node-a", {"clients": 2}, 30)
    await store.heartbeat("node-b", {"clients": 5}, 0.3)
    assert await store.nodes() == {"node-a": {"clients": 2}, "node-b": {"clients": 5}}

    alive: list[str] = []
    began = time.monotonic()
    while time.monotonic() - began < 5 and alive != ["node-a"]:  # a bounded poll
        alive = list(await store.nodes())
        await asyncio.sleep(0.05)
    assert alive == ["node-a"]  # node-b's heartbeat expired
    await store.leave("node-a")
    assert await store.nodes() == {}


async def test_a_lock_has_one_holder_until_released_or_expired(store: ClusterStore) -> None:
    assert await store.acquire("producer:x", "node-a", 0.5)
    assert not await store.acquire("producer:x", "node-b", 0.5)
    assert await store.acquire("producer:x", "node-a", 0.5)  # renewal
    assert await store.leaders() == {"producer:x": "node-a"}

    taken = False
    began = time.monotonic()
    while not taken and time.monotonic() - began < 5:  # a bounded poll
        taken = await store.acquire("producer:x", "node-b", 30)
        await asyncio.sleep(0.05)
    assert taken  # node-a stopped renewing: its lock expired
    assert time.monotonic() - began >= 0.3
    await store.release("producer:x", "node-a")  # not its lock any more: no effect
    assert await store.leaders() == {"producer:x": "node-b"}
    await store.release("producer:x", "node-b")
    assert await store.leaders() == {}


async def test_a_marked_gap_makes_every_earlier_id_incomplete(store: ClusterStore) -> None:
    now = time.time()
    before = await store.append("org.a", '"one"', None, now)
    await store.mark_gap()  # a recorder took over: something may have gone unrecorded
    after = await store.append("org.a", '"two"', None, now)

    assert (await store.since("org.a", before, now))[1] is False
    events, complete = await store.since("org.a", after - 1, now)
    assert [e.payload for e in events] == ['"two"'] and complete


async def test_a_redis_that_lost_its_data_begins_a_new_epoch() -> None:
    prefix = unique_prefix()
    async with store_from_url(REDIS_URL, prefix) as store:
        history = ClusterHistory(store)
        before = await history.append("org.a", '"one"', "m1")
        await drop_redis_keys(prefix)  # as a Redis restarted without persistence
        after = await history.append("org.a", '"two"', "m2")
        try:
            assert before.split("-")[0] != after.split("-")[0]  # old ids name nothing now
            assert await history.since("org.a", before) == ([], False)
            assert (await history.since("org.a", after))[1] is True
        finally:
            await drop_redis_keys(prefix)
