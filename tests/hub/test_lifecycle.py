"""Back-pressure, workers, and shutting down without losing what was accepted."""

from __future__ import annotations

import asyncio
import re
import threading
import time

from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer
from support import TIMEOUT


def blocked_consumer(topic: str, release: threading.Event, consumed: list):
    class Blocked(Consumer):
        def consume(self, message):
            release.wait(TIMEOUT)
            consumed.append(message.body)

    Blocked.topic = topic
    return Blocked


async def test_a_full_backlog_makes_the_publisher_wait(memory_config):
    release = threading.Event()
    consumed: list = []
    config = {**memory_config, "moksha.consumer_backlog": 2}
    async with CentralMokshaHub(config, [blocked_consumer("t", release, consumed)], []) as hub:
        # One message in the worker's hands, two in the backlog...
        for i in range(3):
            await asyncio.wait_for(hub.publish("t", i), TIMEOUT)
        # ...so the fourth cannot be accepted until the consumer makes room.
        fourth = asyncio.ensure_future(hub.publish("t", 3))
        done, _ = await asyncio.wait([fourth], timeout=0.2)
        assert not done
        assert hub.consumers[0].__json__()["backlog"] == 2
        release.set()
        await asyncio.wait_for(fourth, TIMEOUT)
    assert consumed == [0, 1, 2, 3]


def test_several_workers_consume_in_parallel(memory_config):
    both_inside = threading.Barrier(2, timeout=TIMEOUT)
    done = []

    class Parallel(Consumer):
        topic = "p"

        def consume(self, message):
            both_inside.wait()  # only passes when two messages are consumed at once
            done.append(message.body)

    config = {**memory_config, "moksha.workers_per_consumer": 2}
    with CentralMokshaHub(config, [Parallel], []) as hub:
        hub.send_message("p", 1)
        hub.send_message("p", 2)
    assert sorted(done) == [1, 2]


async def test_async_consumers_respect_the_concurrency_limit(memory_config):
    peak = 0
    running = 0

    class Limited(Consumer):
        topic = "l"

        async def consume(self, message):
            nonlocal peak, running
            running += 1
            peak = max(peak, running)
            for _ in range(3):
                await asyncio.sleep(0)
            running -= 1

    config = {**memory_config, "moksha.workers_per_consumer": 3}
    async with CentralMokshaHub(config, [Limited], []) as hub:
        for i in range(30):
            await hub.publish("l", i)
        consumer = hub.consumers[0]
    assert peak == 3
    assert consumer.__json__()["headcount_out"] == 30


def test_closing_drains_the_backlog(memory_config):
    consumed = []

    class Slowish(Consumer):
        topic = "d"

        def consume(self, message):
            time.sleep(0.001)  # simulated work, not synchronisation
            consumed.append(message.body)

    hub = CentralMokshaHub(memory_config, [Slowish], [])
    for i in range(200):
        hub.send_message("d", i)
    hub.close()
    assert consumed == list(range(200))


def test_closing_gives_up_on_a_stuck_consumer_after_the_timeout(memory_config, caplog):
    release = threading.Event()
    consumed: list = []
    config = {**memory_config, "moksha.shutdown_timeout": 0.3}
    hub = CentralMokshaHub(config, [blocked_consumer("s", release, consumed)], [])
    for i in range(5):
        hub.send_message("s", i)
    started = time.monotonic()
    hub.close()
    took = time.monotonic() - started
    release.set()
    assert took < TIMEOUT
    # The line says how long the hub waited (the whole timeout), not what was left of it.
    waited = re.search(r"4 messages left unprocessed after waiting (\d+\.\d)s", caplog.text)
    assert waited, caplog.text
    assert 0.3 <= float(waited[1]) < TIMEOUT


def test_stop_hooks_run_once_at_shutdown(memory_config):
    stopped = []

    class Stoppable(Consumer):
        topic = "x"

        def consume(self, message):
            pass

        def stop(self):
            stopped.append(type(self).__name__)

    with CentralMokshaHub(memory_config, [Stoppable], []):
        assert stopped == []
    assert stopped == ["Stoppable"]
