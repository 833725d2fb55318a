"""A consumer that fails: retries with the attempt in a header, then the dead-letter topic."""

from __future__ import annotations

import pytest

from moksha.hub import DEAD_LETTER_HEADER, CentralMokshaHub
from moksha.hub.api import Consumer, Drop, Nack
from support import consumer_of


@pytest.fixture
def config(memory_config):
    return {**memory_config, "moksha.retry_delay": 0.01}


def failing(topic, inbox, error, *, times=1_000):
    """A consumer that raises ``error`` the first ``times`` attempts, recording each."""

    class Failing(Consumer):
        def consume(self, message):
            inbox(("attempt", message.headers.get("moksha-attempt", "1"), message.body))
            if len([i for i in inbox.items if i[0] == "attempt"]) <= times:
                raise error

    Failing.topic = topic
    return Failing


def test_a_failed_message_is_retried_and_then_consumed(config, inbox):
    with CentralMokshaHub(config, [failing("job", inbox, OSError("busy"), times=2)], []) as hub:
        hub.send_message("job", {"id": 7})
        attempts = inbox.wait(3)
    assert attempts == [
        ("attempt", "1", {"id": 7}),
        ("attempt", "2", {"id": 7}),
        ("attempt", "3", {"id": 7}),
    ]


def test_a_poison_message_ends_on_the_dead_letter_topic(config, inbox):
    dead = []
    consumers = [
        failing("job", inbox, ValueError("bad input")),
        consumer_of("job.dead", dead.append, field=""),
    ]
    config = {**config, "moksha.max_retries": 2}
    with CentralMokshaHub(config, consumers, []) as hub:
        hub.send_message("job", {"id": 7}, headers={"trace": "abc"})
        hub.send_message("marker.after", 1)
        inbox.wait(3)
    # Closing drained the backlogs: the dead letter has been consumed by now.
    [letter] = dead
    assert letter.body == {"id": 7}
    assert letter.headers[DEAD_LETTER_HEADER] == "job"
    assert letter.headers["moksha-error"] == "ValueError: bad input"
    assert letter.headers["moksha-attempts"] == "3"
    assert letter.headers["moksha-consumer"] == "Failing"
    assert letter.headers["trace"] == "abc"
    assert len(inbox.items) == 3  # 1 + max_retries, then no more


def test_the_dead_letter_topic_is_configurable(config, inbox):
    dead = []
    consumers = [
        failing("a.b", inbox, ValueError("x")),
        consumer_of("errors.#", dead.append, field="topic"),
    ]
    config = {**config, "moksha.max_retries": 0, "moksha.dead_letter_topic": "errors.{topic}"}
    with CentralMokshaHub(config, consumers, []) as hub:
        hub.send_message("a.b", 1)
        inbox.wait(1)
    assert dead == ["errors.a.b"]


def test_a_dead_letter_that_fails_again_is_not_dead_lettered_forever(config, inbox, caplog):
    # The consumer also receives its own dead letters ('job.#') and fails on them too.
    config = {**config, "moksha.max_retries": 0}
    with CentralMokshaHub(config, [failing("job.#", inbox, ValueError("always"))], []) as hub:
        hub.send_message("job", 1)
        inbox.wait(2)
    assert [topic for topic in caplog.messages if "failed as well" in topic]
    assert len(inbox.items) == 2  # the message, then its dead letter once


def test_drop_discards_without_retry_or_dead_letter(config, inbox):
    dead = []
    consumers = [failing("job", inbox, Drop("not for us")), consumer_of("job.dead", dead.append)]
    with CentralMokshaHub(config, consumers, []) as hub:
        hub.send_message("job", 1)
        inbox.wait(1)
    assert len(inbox.items) == 1
    assert dead == []
    assert hub.consumers[0].__json__()["exceptions"] == 0


def test_nack_goes_to_the_dead_letters_at_once(config, inbox):
    dead = []
    consumers = [
        failing("job", inbox, Nack("malformed")),
        consumer_of("job.dead", dead.append, field=""),
    ]
    with CentralMokshaHub(config, consumers, []) as hub:
        hub.send_message("job", 1)
        inbox.wait(1)
    assert len(inbox.items) == 1
    assert [letter.headers["moksha-error"] for letter in dead] == ["Nack: malformed"]


async def test_async_consumers_are_retried_too(config, inbox):
    class AsyncFlaky(Consumer):
        topic = "job"

        async def consume(self, message):
            inbox(message.headers.get("moksha-attempt", "1"))
            if len(inbox.items) < 2:
                raise OSError("later")

    async with CentralMokshaHub(config, [AsyncFlaky], []) as hub:
        await hub.publish("job", 1)
    assert inbox.items == ["1", "2"]


@pytest.mark.parametrize("is_async", [False, True])
def test_each_failure_is_logged_with_one_traceback(config, inbox, caplog, is_async):
    def fail(self, message):
        raise ValueError(f"cannot handle {message.body}")

    async def fail_async(self, message):
        raise ValueError(f"cannot handle {message.body}")

    failing_consumer = type(
        "AlwaysFails",
        (Consumer,),
        {"topic": "job", "consume": fail_async if is_async else fail},
    )
    dead = consumer_of("job.dead", inbox)
    with CentralMokshaHub({**config, "moksha.max_retries": 2}, [failing_consumer, dead], []) as hub:
        hub.send_message("job", 1)
        inbox.wait(1)
    [given_up] = [record for record in caplog.records if record.exc_info]
    assert "failed 3 times; giving up" in given_up.getMessage()
    text = caplog.handler.format(given_up)
    assert text.count("Traceback (most recent call last)") == 1, text
    assert "During handling of the above exception" not in text
    assert text.count("ValueError: cannot handle 1") == 1
