"""The hub as a client: send, subscribe, unsubscribe, close — from plain Python and asyncio."""

from __future__ import annotations

import asyncio
import threading
from uuid import uuid4

import pytest

from moksha.errors import HubClosed, MokshaError
from moksha.hub import CentralMokshaHub, HubState, MokshaHub
from moksha.message import Message


@pytest.fixture
def topic() -> str:
    return f"test.{uuid4().hex}"


@pytest.fixture
def hub(memory_config):
    hub = MokshaHub(memory_config)
    yield hub
    hub.close()


def test_a_new_hub_has_no_topics(hub):
    assert hub.state is HubState.RUNNING
    assert hub.topics == {}
    assert [backend.name for backend in hub.backends] == ["memory"]


def test_send_and_receive(hub, topic, inbox):
    hub.subscribe(topic, inbox)
    hub.send_message(topic, "secret_message")
    [message] = inbox.wait(1)
    assert isinstance(message, Message)
    assert message.topic == topic
    assert message.body == "secret_message"
    assert message["body"] == "secret_message"


def test_nothing_arrives_without_a_subscription(hub, topic, inbox):
    hub.subscribe(topic + ".other", inbox)
    hub.send_message(topic, "secret_message")
    # A marker sent after the first message arrives after it: then we know.
    hub.subscribe(topic + ".marker", inbox)
    hub.send_message(topic + ".marker", "done")
    assert [m.body for m in inbox.wait(1)] == ["done"]


def test_raw_subscription_gets_the_json_text(hub, topic, inbox):
    hub.subscribe(topic, inbox, jsonify=False)
    hub.send_message(topic, {"a": 1})
    assert inbox.wait(1)[0].body == '{"a":1}'


def test_send_to_a_list_of_topics(hub, topic, inbox):
    hub.subscribe(topic + ".#", inbox)
    hub.send_message([topic + ".a", topic + ".b"], 1)
    assert sorted(m.topic for m in inbox.wait(2)) == [topic + ".a", topic + ".b"]


def test_headers_travel_with_the_message(hub, topic, inbox):
    hub.subscribe(topic, inbox)
    hub.send_message(topic, 1, headers={"origin": "test"})
    assert inbox.wait(1)[0].headers == {"origin": "test"}


def test_unsubscribe_stops_deliveries(hub, topic, inbox):
    other = []
    hub.subscribe(topic, other.append)
    hub.subscribe(topic, inbox)
    hub.unsubscribe(other.append)
    hub.send_message(topic, 1)
    inbox.wait(1)
    assert other == []
    assert hub.topics == {topic: [inbox]}


def test_a_failing_callback_does_not_stop_the_others(hub, topic, inbox, caplog):
    def broken(message):
        raise RuntimeError("boom")

    hub.subscribe(topic, broken)
    hub.subscribe(topic, inbox)
    hub.send_message(topic, 1)
    hub.send_message(topic, 2)
    assert [m.body for m in inbox.wait(2)] == [1, 2]
    assert "boom" in caplog.text


def test_sending_after_close_says_the_hub_is_closed(memory_config, topic):
    hub = MokshaHub(memory_config)
    hub.close()
    hub.close()  # twice is harmless
    assert hub.state is HubState.CLOSED
    with pytest.raises(HubClosed, match="closed"):
        hub.send_message(topic, 1)


def test_hub_as_context_manager(memory_config, topic, inbox):
    with MokshaHub(memory_config) as hub:
        hub.subscribe(topic, inbox)
        hub.send_message(topic, 1)
        inbox.wait(1)
    assert hub.state is HubState.CLOSED


def test_a_dict_config_reaches_the_hub(topic):
    hub = MokshaHub({"moksha.backends": "memory", "my.plugin.key": "value"})
    try:
        assert hub.config.get("my.plugin.key") == "value"
    finally:
        hub.close()


async def test_asyncio_use(memory_config, topic):
    received: asyncio.Queue[Message] = asyncio.Queue()
    async with MokshaHub(memory_config) as hub:
        await hub.asubscribe(topic + ".*", received.put)
        sent = await hub.publish(topic + ".x", {"n": 1})
        message = await asyncio.wait_for(received.get(), 5)
    assert message.id == sent.id
    assert message.body == {"n": 1}
    assert hub.state is HubState.CLOSED


async def test_blocking_calls_on_the_event_loop_schedule_instead(memory_config, topic):
    received: asyncio.Queue[Message] = asyncio.Queue()
    async with MokshaHub(memory_config) as hub:
        await hub.asubscribe(topic, received.put)
        hub.send_message(topic, 1)  # on the loop: scheduled, returns at once
        assert (await asyncio.wait_for(received.get(), 5)).body == 1
        with pytest.raises(MokshaError, match=r"await hub\.aclose"):
            hub.close()


async def test_sync_calls_from_another_thread_reach_an_async_hub(memory_config, topic):
    received: asyncio.Queue[Message] = asyncio.Queue()
    async with MokshaHub(memory_config) as hub:
        await hub.asubscribe(topic, received.put)
        await asyncio.to_thread(hub.send_message, topic, "from a thread")
        assert (await asyncio.wait_for(received.get(), 5)).body == "from a thread"


def test_post_from_many_threads_loses_nothing(hub, topic, inbox):
    hub.subscribe(topic, inbox)
    threads = [
        threading.Thread(target=lambda i=i: [hub.post(topic, (i, n)) for n in range(50)])
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(inbox.wait(200)) == 200


def test_central_hub_without_plugins_installed(memory_config):
    with CentralMokshaHub(memory_config, consumers=[], producers=[]) as hub:
        assert hub.consumers == []
        assert hub.producers == []


async def test_a_sync_call_starts_a_hub_made_where_a_loop_runs(memory_config, topic, inbox):
    # Jupyter and Playwright's sync API run code while an event loop is running.
    hub = MokshaHub(memory_config)
    assert hub.state is HubState.NEW
    hub.subscribe(topic, inbox)  # blocks this loop a moment, as a notebook cell would
    hub.send_message(topic, 1)
    assert inbox.wait(1)[0].body == 1
    hub.close()
    assert hub.state is HubState.CLOSED


def test_closing_a_hub_never_started_is_harmless(memory_config):
    async def make():
        return MokshaHub(memory_config)

    hub = asyncio.run(make())
    hub.close()
    assert hub.state is HubState.CLOSED
