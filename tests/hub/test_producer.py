"""Producers: polling at a frequency, now, sync and async poll, stopping promptly."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer, PollingProducer, Producer
from support import TIMEOUT, consumer_of


def test_a_polling_producer_polls_at_its_frequency(memory_config, inbox):
    class Ticker(PollingProducer):
        frequency = 0.05

        def poll(self):
            inbox(time.monotonic())

    started = time.monotonic()
    with CentralMokshaHub(memory_config, [], [Ticker]):
        polls = inbox.wait(5)
    # Not faster than the frequency (without `now`, the first poll waits one interval too).
    assert polls[4] - started >= 5 * 0.05 * 0.9
    # Ticks keep a fixed schedule: the fifth is about four intervals after the first.
    assert polls[4] - polls[0] >= 4 * 0.05 * 0.9


def test_frequency_may_be_a_timedelta_and_now_polls_at_once(memory_config, inbox):
    class Hourly(PollingProducer):
        frequency = timedelta(hours=1)
        now = True

        def poll(self):
            self.send_message("clock.hour", {"n": 1})

    # Consumers start before producers, so this one sees the very first poll.
    with CentralMokshaHub(memory_config, [consumer_of("clock.#", inbox)], [Hourly]) as hub:
        assert inbox.wait(1) == [{"n": 1}]
        producer = hub.producers[0]
        assert producer.frequency == 3600.0
        assert producer.__json__()["last_ran"] is not None
    assert len(inbox.items) == 1


def test_polled_messages_reach_consumers(memory_config, inbox):
    class Counter(PollingProducer):
        frequency = 0.01
        now = True
        count = 0

        def poll(self):
            self.count += 1
            self.send_message("count", self.count)

    class Sink(Consumer):
        topic = "count"

        def consume(self, message):
            inbox(message.body)

    with CentralMokshaHub(memory_config, [Sink], [Counter]):
        received = inbox.wait(10)
    assert received[:10] == list(range(1, 11))


def test_async_poll_runs_on_the_loop(memory_config, inbox):
    class AsyncTicker(PollingProducer):
        frequency = 0.01
        now = True

        async def poll(self):
            await asyncio.sleep(0)
            inbox(threading.current_thread().name)

    with CentralMokshaHub(memory_config, [], [AsyncTicker]):
        assert set(inbox.wait(3)) == {"moksha-hub"}


def test_a_failing_poll_is_counted_and_polling_goes_on(memory_config, inbox, caplog):
    class Flaky(PollingProducer):
        frequency = 0.01
        now = True
        calls = 0

        def poll(self):
            self.calls += 1
            inbox(self.calls)
            if self.calls <= 2:
                raise OSError("sensor offline")

    with CentralMokshaHub(memory_config, [], [Flaky]) as hub:
        inbox.wait(4)
        stats = hub.producers[0].__json__()
    assert stats["exceptions"] == 0  # reset after the first good poll, as the original did
    assert caplog.text.count("sensor offline") >= 2


def test_closing_stops_a_slow_producer_promptly(memory_config, inbox):
    class Daily(PollingProducer):
        frequency = timedelta(days=1)

        def poll(self):
            inbox("polled")

    hub = CentralMokshaHub(memory_config, [], [Daily])
    started = time.monotonic()
    hub.close()
    assert time.monotonic() - started < TIMEOUT
    assert inbox.items == []


def test_producer_stop_ends_polling(memory_config, inbox):
    class Ticker(PollingProducer):
        frequency = 0.01

        def poll(self):
            inbox("tick")

    with CentralMokshaHub(memory_config, [], [Ticker]) as hub:
        inbox.wait(2)
        hub.producers[0].stop()
        count = len(inbox.items)
        # After stop at most the poll already running completes; a marker proves time passed.
        hub.subscribe("marker", inbox)
        hub.send_message("marker", "m")
        inbox.wait(count + 1)
    assert inbox.items.count("tick") <= count + 1


def test_a_plain_producer_sends_from_its_constructor(memory_config, inbox):
    class Announcer(Producer):
        def __init__(self, hub):
            super().__init__(hub)
            self.send_message("announce", "hello")

    with CentralMokshaHub(memory_config, [consumer_of("announce", inbox)], [Announcer]) as hub:
        assert inbox.wait(1) == ["hello"]
        assert [type(p).__name__ for p in hub.producers] == ["Announcer"]
        assert hub.producers[0].__json__()["initialized"] is True


def test_frequency_zero_polls_back_to_back(memory_config, inbox):
    class Busy(PollingProducer):
        frequency = 0

        def poll(self):
            inbox(1)

    with CentralMokshaHub(memory_config, [], [Busy]):
        inbox.wait(20)
