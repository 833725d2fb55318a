"""The hub's outgoing queue, as a script or a plugin sees it (send_message, flush, close)."""

from __future__ import annotations

import asyncio
import logging
import threading
from uuid import uuid4

import pytest

from moksha.config import Config
from moksha.errors import BackendError, BackendUnavailable
from moksha.hub import CentralMokshaHub, MokshaHub
from moksha.hub.api import Consumer
from moksha.hub.backends.memory import MemoryBackend
from moksha.hub.outgoing import Outgoing
from moksha.message import Message
from support import TIMEOUT, Inbox


@pytest.fixture
def a_topic() -> str:
    return f"test.outgoing.{uuid4().hex}"


class Refusing(MemoryBackend):
    """The memory bus, except that it refuses every message on a topic ending in ``.bad``.

    It refuses once ``gate`` is set (at once, unless a test clears it).
    """

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.gate = threading.Event()
        self.gate.set()

    async def publish(self, message: Message) -> None:
        if message.topic.endswith(".bad"):
            await asyncio.to_thread(self.gate.wait, TIMEOUT)
            raise BackendError(f"refused {message.topic}")
        await super().publish(message)

    def offer(self, message: Message):  # type: ignore[no-untyped-def]
        if message.topic.endswith(".bad"):
            return self.publish(message)
        return super().offer(message)


def refusing_hub(config: dict, backend: Refusing | None = None) -> MokshaHub:
    return MokshaHub(config, backends=[backend or Refusing(Config.coerce(config))])


def test_send_message_keeps_the_order_of_the_caller(memory_config, a_topic, inbox):
    hub = MokshaHub(memory_config)
    hub.subscribe(a_topic, lambda message: inbox(message.body))
    for i in range(500):
        hub.send_message(a_topic, i)
    hub.flush()
    assert inbox.wait(500) == list(range(500))
    hub.close()


def test_a_failed_send_raises_on_the_next_call(memory_config, a_topic, inbox, caplog):
    hub = refusing_hub(memory_config)
    hub.subscribe(f"{a_topic}.#", lambda message: inbox(message.body))
    hub.send_message(f"{a_topic}.bad", 1)
    hub.send_message(f"{a_topic}.good", 2, wait=True)  # the bad one was sent before it
    with pytest.raises(BackendError, match="refused"):
        hub.send_message(f"{a_topic}.good", 3)
    hub.send_message(f"{a_topic}.good", 4)  # reported once; the hub goes on
    hub.flush()
    assert inbox.wait(2) == [2, 4]
    assert f"{a_topic}.bad" in caplog.text  # logged too, with its topic
    hub.close()


def test_flush_and_close_raise_what_failed(memory_config, a_topic):
    backend = Refusing(Config.coerce(memory_config))
    hub = refusing_hub(memory_config, backend)
    hub.send_message(f"{a_topic}.bad", 1)
    with pytest.raises(BackendError, match="refused"):
        hub.flush()
    hub.flush()  # nothing more to report
    backend.gate.clear()  # both queued before the first fails
    hub.send_message(f"{a_topic}.bad", 2)
    hub.send_message(f"{a_topic}.bad", 3)
    backend.gate.set()
    with pytest.raises(BackendError, match="refused") as raised:
        hub.close()
    assert "1 more message(s)" in str(raised.value.__notes__)


def test_wait_true_raises_at_once(memory_config, a_topic):
    hub = refusing_hub(memory_config)
    with pytest.raises(BackendError, match="refused"):
        hub.send_message(f"{a_topic}.bad", 1, wait=True)
    hub.flush()  # already reported to the caller that waited
    hub.close()


def test_a_full_queue_makes_a_script_wait_for_a_slow_consumer(a_topic):
    gate = threading.Event()
    consumed = Inbox()

    class Slow(Consumer):
        topic = a_topic

        def consume(self, message):
            gate.wait(TIMEOUT)
            consumed(message.body)

    config = {"moksha.backends": "memory", "moksha.consumer_backlog": 3, "moksha.outgoing_queue": 5}
    hub = CentralMokshaHub(config, [Slow], [])
    queued = Inbox()

    def script() -> None:
        for i in range(40):
            hub.send_message(a_topic, i)
            queued(i)

    sender = threading.Thread(target=script)
    sender.start()
    # The consumer holds one, its backlog 3, the queue 5 (+1 being handed over):
    # the script then waits instead of piling messages up.
    queued.wait(9)
    sender.join(0.3)
    assert sender.is_alive()
    assert len(queued.items) <= 11
    gate.set()
    sender.join(TIMEOUT)
    assert consumed.wait(40) == list(range(40))
    hub.close()


def test_a_script_waits_for_room_only_up_to_publish_timeout(a_topic):
    gate = threading.Event()

    class Stuck(Consumer):
        topic = a_topic

        def consume(self, message):
            gate.wait(TIMEOUT)

    config = {
        "moksha.backends": "memory",
        "moksha.consumer_backlog": 1,
        "moksha.outgoing_queue": 2,
        "moksha.publish_timeout": 0.3,
        "moksha.shutdown_timeout": 0.2,
    }
    hub = CentralMokshaHub(config, [Stuck], [])
    with pytest.raises(BackendUnavailable, match="outgoing queue stayed full"):
        for i in range(20):
            hub.send_message(a_topic, i)
    gate.set()
    hub.close()


def test_what_a_consumer_publishes_is_sent_before_the_hub_stops(memory_config, a_topic, inbox):
    class Relay(Consumer):
        topic = f"{a_topic}.in"

        def consume(self, message):
            self.send_message(f"{a_topic}.out", message.body)

    with CentralMokshaHub(memory_config, [Relay], []) as hub:
        hub.subscribe(f"{a_topic}.out", lambda message: inbox(message.body))
        for i in range(300):
            hub.send_message(f"{a_topic}.in", i)
    assert sorted(inbox.wait(300)) == list(range(300))


def test_what_cannot_be_sent_by_the_shutdown_timeout_is_counted_and_logged(a_topic, caplog):
    gate = threading.Event()

    class Stuck(Consumer):
        topic = a_topic

        def consume(self, message):
            gate.wait(TIMEOUT)

    config = {
        "moksha.backends": "memory",
        "moksha.consumer_backlog": 1,
        "moksha.outgoing_queue": 10,
        "moksha.shutdown_timeout": 0.3,
    }
    hub = CentralMokshaHub(config, [Stuck], [])
    for i in range(8):
        hub.send_message(a_topic, i)
    caplog.set_level(logging.WARNING, logger="moksha")
    try:
        hub.close()
    finally:
        gate.set()
    # One consumed (stuck), one in the backlog, one being handed over: the rest are lost.
    [line] = [r for r in caplog.records if "were not sent" in r.getMessage()]
    assert line.levelno == logging.ERROR
    assert a_topic in line.getMessage()
    lost = int(line.getMessage().split()[0])
    assert 5 <= lost <= 6


async def test_stopping_a_drain_as_its_last_message_is_sent_stops_it(a_topic):
    """A drain cancelled just as the queue empties ends cancelled, not as if finished.

    Python 3.11's ``asyncio.wait_for`` returns the result instead when both
    happen in one loop turn (CPython gh-86296): a hub told to stop there went on
    as if nothing was asked.
    """
    loop = asyncio.get_running_loop()
    release = asyncio.Event()
    draining: list[asyncio.Task[int]] = []

    async def send(message: Message) -> None:
        await release.wait()
        # Two loop turns later, once the queue's flush marker resolved: stop the drain.
        loop.call_soon(loop.call_soon, draining[0].cancel)

    outgoing = Outgoing(10, send, loop, room_timeout=TIMEOUT)
    sender = asyncio.create_task(outgoing.run())
    try:
        outgoing.put_nowait(Message(a_topic, 1))
        draining.append(asyncio.create_task(outgoing.drain(TIMEOUT)))
        await asyncio.sleep(0)  # the drain waits for the message to be sent
        release.set()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(TIMEOUT):
                await draining[0]
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
