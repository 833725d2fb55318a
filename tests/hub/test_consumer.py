"""Consumers, as the original Moksha's hub tests exercised them, and what we added."""

from __future__ import annotations

import asyncio
import threading
from uuid import uuid4

import pytest

from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer
from support import TIMEOUT, Inbox, consumer_of


@pytest.fixture
def a_topic() -> str:
    return f"test.{uuid4().hex}"


def test_a_consumer_without_consume_raises_not_implemented(memory_config):
    class StillAbstractConsumer(Consumer):
        pass

    with (
        CentralMokshaHub(memory_config, consumers=[], producers=[]) as hub,
        pytest.raises(NotImplementedError),
    ):
        StillAbstractConsumer(hub).consume("foo")


def test_receive_a_string(memory_config, a_topic, inbox):
    with CentralMokshaHub(memory_config, [consumer_of(a_topic, inbox)], []) as hub:
        hub.send_message(a_topic, "secret_message")
        assert inbox.wait(1) == ["secret_message"]


def test_receive_without_json(memory_config, a_topic, inbox):
    consumer = consumer_of(a_topic, inbox, jsonify=False)
    with CentralMokshaHub(memory_config, [consumer], []) as hub:
        hub.send_message(a_topic, {"secret": "message"})
        assert inbox.wait(1) == ['{"secret":"message"}']


def test_a_body_that_is_not_json_passes_through(memory_config, a_topic, inbox):
    with CentralMokshaHub(memory_config, [consumer_of(a_topic, inbox)], []) as hub:
        hub.send_message(a_topic, "plain text, not JSON", jsonify=False)
        assert inbox.wait(1) == ["plain text, not JSON"]


def test_two_consumers_on_one_topic_both_receive(memory_config, a_topic, inbox):
    consumers = [consumer_of(a_topic, inbox), consumer_of(a_topic, inbox)]
    with CentralMokshaHub(memory_config, consumers, []) as hub:
        hub.send_message(a_topic, "secret")
        assert inbox.wait(2) == ["secret", "secret"]


def test_near_miss_topics_do_not_receive(memory_config, a_topic, inbox):
    misses = Inbox()
    consumers = [
        consumer_of(a_topic, inbox),
        consumer_of(a_topic[:-1], misses),
        consumer_of(a_topic + "X", misses),
        consumer_of(a_topic + ".X", misses),
    ]
    with CentralMokshaHub(memory_config, consumers, []) as hub:
        hub.send_message(a_topic, "secret")
        inbox.wait(1)
    # Closing drained every backlog: a miss would have been consumed by now.
    assert misses.items == []


def test_receive_a_dict(memory_config, a_topic, inbox):
    with CentralMokshaHub(memory_config, [consumer_of(a_topic, inbox)], []) as hub:
        hub.send_message(a_topic, {"secret": "message"})
        assert inbox.wait(1)[0]["secret"] == "message"


@pytest.mark.parametrize("body", ["secret", {"secret": "message", "n": [1, 2.5, None]}])
def test_n_messages_arrive_complete_and_in_order(memory_config, a_topic, inbox, body):
    with CentralMokshaHub(memory_config, [consumer_of(a_topic, inbox, field="")], []) as hub:
        for i in range(500):
            hub.send_message(a_topic, body, headers={"i": str(i)})
        received = inbox.wait(500)
    assert [m.headers["i"] for m in received] == [str(i) for i in range(500)]
    assert all(m.body == body for m in received)


def test_one_consumer_on_several_topics(memory_config, a_topic, inbox):
    b_topic = a_topic + "b"
    consumer = consumer_of([a_topic, b_topic], inbox, field="topic")
    with CentralMokshaHub(memory_config, [consumer], []) as hub:
        hub.send_message(a_topic, 1)
        hub.send_message(b_topic, 2)
        assert inbox.wait(2) == [a_topic, b_topic]


def test_topic_may_be_set_in_init(memory_config, inbox):
    class DynamicTopic(Consumer):
        topic = "bad.topic"

        def __init__(self, hub):
            super().__init__(hub)
            self.topic = "good.topic"

        def consume(self, message):
            inbox(message.topic)

    with CentralMokshaHub(memory_config, [DynamicTopic], []) as hub:
        assert list(hub.topics) == ["good.topic"]
        hub.send_message("bad.topic", 1)
        hub.send_message("good.topic", 2)
        assert inbox.wait(1) == ["good.topic"]


@pytest.mark.parametrize(
    ("pattern", "hit", "miss"),
    [
        ("org.*.event", "org.app.event", "org.app.sub.event"),
        ("org.#", "org", "organisation.x"),
        ("org.#.event", "org.a.b.event", "org.a.b.events"),
        ("#", "anything.at.all", None),
    ],
)
def test_wildcard_patterns(memory_config, inbox, pattern, hit, miss):
    with CentralMokshaHub(memory_config, [consumer_of(pattern, inbox, field="topic")], []) as hub:
        if miss:
            hub.send_message(miss, 0)
        hub.send_message(hit, 1)
        assert inbox.wait(1) == [hit]


def test_async_consumers_run_on_the_loop(memory_config, a_topic, inbox):
    class AsyncConsumer(Consumer):
        topic = a_topic

        async def consume(self, message):
            await asyncio.sleep(0)
            inbox((threading.current_thread().name, message.body))

    with CentralMokshaHub(memory_config, [AsyncConsumer], []) as hub:
        for i in range(10):
            hub.send_message(a_topic, i)
        received = inbox.wait(10)
    assert [body for _, body in received] == list(range(10))
    assert {thread for thread, _ in received} == {"moksha-hub"}


def test_a_blocking_consumer_does_not_delay_the_others(memory_config, a_topic, inbox):
    release = threading.Event()

    class Stuck(Consumer):
        topic = a_topic

        def consume(self, message):
            release.wait(TIMEOUT)

    with CentralMokshaHub(memory_config, [Stuck, consumer_of(a_topic, inbox)], []) as hub:
        for i in range(3):
            hub.send_message(a_topic, i)
        assert inbox.wait(3) == [0, 1, 2]
        assert not release.is_set()
        release.set()


def test_an_exception_is_counted_and_the_hub_goes_on(memory_config, a_topic, inbox, caplog):
    class Flaky(Consumer):
        topic = a_topic

        def consume(self, message):
            if message.body == "bad":
                raise ValueError("cannot handle bad")
            inbox(message.body)

    config = {**memory_config, "moksha.max_retries": 0}
    with CentralMokshaHub(config, [Flaky], []) as hub:
        hub.send_message(a_topic, "bad")
        hub.send_message(a_topic, "good")
        assert inbox.wait(1) == ["good"]
        stats = hub.consumers[0].__json__()
    assert stats["exceptions"] == 1
    assert stats["headcount_in"] == stats["headcount_out"] == 2
    assert "cannot handle bad" in caplog.text


def test_a_rejected_message_is_not_consumed(memory_config, a_topic, inbox):
    class Picky(Consumer):
        topic = a_topic

        def validate(self, message):
            if message.body < 0:
                raise ValueError("negative")

        def consume(self, message):
            inbox(message.body)

    with CentralMokshaHub(memory_config, [Picky], []) as hub:
        hub.send_message(a_topic, -1)
        hub.send_message(a_topic, 1)
        assert inbox.wait(1) == [1]


def test_hooks_run_in_order(memory_config, a_topic, inbox):
    class Hooked(Consumer):
        topic = a_topic

        def pre_consume(self, message):
            inbox("pre")

        def consume(self, message):
            inbox("consume")

        def post_consume(self, message):
            inbox("post")

    with CentralMokshaHub(memory_config, [Hooked], []) as hub:
        hub.send_message(a_topic, 1)
        assert inbox.wait(3) == ["pre", "consume", "post"]


def test_stats_as_the_original_reported_them(memory_config, a_topic, inbox):
    release = threading.Event()
    working = threading.Event()

    class Slow(Consumer):
        topic = a_topic

        def consume(self, message):
            working.set()
            release.wait(TIMEOUT)
            inbox(message.body)

    with CentralMokshaHub(memory_config, [Slow], []) as hub:
        for i in range(3):
            hub.send_message(a_topic, i)
        hub.flush()  # send_message returns once queued; flush, once delivered
        assert working.wait(TIMEOUT)
        consumer = hub.consumers[0]
        stats = consumer.__json__()
        # One taken by the worker, two waiting.
        assert stats["backlog"] == 2
        assert stats["headcount_in"] == 3
        assert stats["headcount_out"] == 1
        release.set()
        inbox.wait(3)
    stats = consumer.__json__()
    assert set(stats) == {
        "name", "module", "topic", "initialized", "exceptions", "jsonify",
        "backlog", "headcount_in", "headcount_out", "times",
    }  # fmt: skip
    assert stats["name"] == "Slow"
    assert stats["initialized"] is True
    assert stats["headcount_out"] == 2  # the counters were reset by the first call
    assert len(stats["times"]) == 3 and all(t >= 0 for t in stats["times"])
    assert consumer.__json__()["times"] == []


def test_consumer_send_message_reaches_other_consumers(memory_config, a_topic, inbox):
    class Relay(Consumer):
        topic = a_topic

        def consume(self, message):
            self.send_message(a_topic + ".relayed", message.body * 2)

    consumers = [Relay, consumer_of(a_topic + ".relayed", inbox)]
    with CentralMokshaHub(memory_config, consumers, []) as hub:
        hub.send_message(a_topic, 21)
        assert inbox.wait(1) == [42]


def test_a_consumer_that_fails_to_start_does_not_stop_the_others(
    memory_config, a_topic, inbox, caplog
):
    class Broken(Consumer):
        topic = a_topic

        def __init__(self, hub):
            raise RuntimeError("no database")

        def consume(self, message):
            inbox("never")

    with CentralMokshaHub(memory_config, [Broken, consumer_of(a_topic, inbox)], []) as hub:
        assert [type(c).__name__ for c in hub.consumers] == ["TestConsumer"]
        hub.send_message(a_topic, 1)
        assert inbox.wait(1) == [1]
    assert "no database" in caplog.text
