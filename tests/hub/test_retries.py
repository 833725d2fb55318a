"""Isolation: retries outside the backlog (the pen, its bound), per-consumer back-pressure, logs."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from uuid import uuid4

import pytest

from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer
from support import TIMEOUT, Inbox, until


@pytest.fixture
def a_topic() -> str:
    return f"test.retries.{uuid4().hex}"


def test_a_full_retry_pen_makes_deliveries_to_that_consumer_wait(a_topic, caplog):
    """Two failed messages wait for their retry (the pen's bound): the third waits to enter."""
    attempts = Inbox()
    release = threading.Event()

    class Failing(Consumer):
        topic = a_topic

        def consume(self, message):
            attempts((message.body, message.headers.get("moksha-attempt", "1")))
            if not release.is_set():
                raise OSError("not yet")

    config = {
        "moksha.backends": "memory",
        "moksha.retry_backlog": 2,
        "moksha.retry_delay": 0.5,
        "moksha.max_retries": 1,
    }
    with CentralMokshaHub(config, [Failing], []) as hub:
        for i in range(2):
            hub.send_message(a_topic, i)
        seen = attempts.wait(2)
        assert seen == [(0, "1"), (1, "1")]
        # Both are in the pen once their failure is logged (same step on the loop).
        deadline = time.monotonic() + TIMEOUT
        while caplog.text.count("retrying in") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        hub.send_message(a_topic, 2)
        # The third is held back until a retry leaves the pen (after 0.5 s): the
        # next attempt the consumer sees is a retry, not message 2.
        release.set()
        seen = attempts.wait(3)
        assert seen[2] == (0, "2")
        assert sorted(attempts.wait(5)[3:]) == [(1, "2"), (2, "1")]


def test_a_failure_is_logged_with_its_topic_consumer_and_message_id(a_topic, caplog):
    class Failing(Consumer):
        topic = a_topic

        def consume(self, message):
            raise ValueError("no")

    config = {"moksha.backends": "memory", "moksha.max_retries": 0}
    caplog.set_level(logging.WARNING, logger="moksha")
    with CentralMokshaHub(config, [Failing], []) as hub:
        hub.send_message(a_topic, 1, wait=True)
        hub.flush()
    [failed] = [r for r in caplog.records if "giving up" in r.getMessage()]
    assert failed.topic == a_topic
    assert failed.consumer == "Failing"
    assert failed.message_id
    [dead] = [r for r in caplog.records if "sent to" in r.getMessage()]
    assert (dead.topic, dead.consumer) == (a_topic, "Failing")


def test_retries_waiting_when_the_hub_stops_are_counted(a_topic, caplog):
    failed = threading.Event()

    class Failing(Consumer):
        topic = a_topic

        def consume(self, message):
            failed.set()
            raise OSError("down")

    config = {
        "moksha.backends": "memory",
        "moksha.retry_delay": 30,
        "moksha.shutdown_timeout": 0.2,
    }
    hub = CentralMokshaHub(config, [Failing], [])
    hub.send_message(a_topic, 1)
    assert failed.wait(TIMEOUT)
    hub.close()
    assert "1 failed message(s) waiting for a retry were dropped at shutdown" in caplog.text


async def test_a_full_backlog_holds_up_only_the_publishers_of_its_topics(a_topic):
    """Per-consumer back-pressure: A's backlog is full, publishing to B's topic goes on."""
    gate = asyncio.Event()
    got_b: list[int] = []

    class Stuck(Consumer):
        topic = f"{a_topic}.a"

        async def consume(self, message):
            await gate.wait()

    class Free(Consumer):
        topic = f"{a_topic}.b"

        async def consume(self, message):
            got_b.append(message.body)

    config = {"moksha.backends": "memory", "moksha.consumer_backlog": 1}
    async with CentralMokshaHub(config, [Stuck, Free], []) as hub:
        # One consumed (stuck), one in the backlog: the third waits for room.
        await hub.publish(f"{a_topic}.a", 1)
        await hub.publish(f"{a_topic}.a", 2)
        waiting = asyncio.create_task(hub.publish(f"{a_topic}.a", 3))
        for i in range(20):
            await hub.publish(f"{a_topic}.b", i)
        await until(lambda: len(got_b) == 20)
        assert not waiting.done()
        gate.set()
        await asyncio.wait_for(waiting, TIMEOUT)
