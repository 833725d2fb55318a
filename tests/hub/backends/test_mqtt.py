"""The MQTT backend with plain MQTT clients, persistent sessions and shared subscriptions.

The contract (``test_contract*.py``) runs on MQTT too; these are what only MQTT has.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import uuid4

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from moksha.config import load_config
from moksha.errors import BackendError, BackendUnavailable, ConfigError, MessageError
from moksha.hub.backends.mqtt import MQTTBackend
from moksha.message import Message
from support import BACKENDS, TIMEOUT, Inbox, Received, free_endpoint, until
from tcp_proxy import TcpProxy


def settings(**more: Any) -> dict[str, Any]:
    return {**BACKENDS["mqtt"](), **more}


def backend(**more: Any) -> MQTTBackend:
    return MQTTBackend(load_config(overrides=settings(**more), environ={}, search=False))


@pytest.fixture
def prefix() -> str:
    return f"mqtt.{uuid4().hex[:12]}"


@pytest.fixture
def group() -> str:
    return f"test.mqtt.{uuid4().hex[:12]}"


@pytest.fixture
async def bus() -> AsyncIterator[MQTTBackend]:
    async with backend() as connected:
        yield connected


@pytest.fixture
def plain() -> Iterator[paho.Client]:
    """A plain paho-mqtt client (MQTT 5) on its own thread, as a device would run."""
    BACKENDS["mqtt"]()  # skips (or fails in CI) without a broker
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    assert connected.wait(TIMEOUT)
    yield client
    client.disconnect()
    client.loop_stop()


async def cleanup(bus: MQTTBackend, group: str) -> None:
    """Close the bus's group sessions, then delete the group's records and sessions."""
    await bus.close()
    for queue in await bus.durable_queues():
        if queue.group == group:
            await bus.delete_durable_queue(queue.name)


async def test_a_device_publishing_a_slashed_topic_reaches_a_dotted_pattern(bus, plain, prefix):
    """A plain client's message (no user properties at all) is a message all the same."""
    received = Received()
    await bus.subscribe([f"{prefix}.*.temp"], received)
    device_topic = prefix.replace(".", "/") + "/kitchen/temp"
    plain.publish(device_topic, json.dumps({"celsius": 21.5}), qos=1).wait_for_publish(TIMEOUT)
    plain.publish(prefix.replace(".", "/") + "/kitchen/humidity", b"60", qos=1)
    plain.publish(device_topic, b"not json \xff", qos=1).wait_for_publish(TIMEOUT)
    first, second = await received.wait(2)
    assert (first.topic, first.body, first.headers) == (
        f"{prefix}.kitchen.temp",
        {"celsius": 21.5},
        {},
    )
    assert first.id and first.id != second.id
    assert second.payload == b"not json \xff"
    assert len(received.messages) == 2


async def test_a_plain_subscriber_sees_slashes_json_and_user_properties(bus, plain, prefix):
    inbox = Inbox()
    subscribed = threading.Event()
    plain.on_message = lambda _c, _u, m: inbox((m.topic, m.payload, m.properties))
    plain.on_subscribe = lambda *_: subscribed.set()
    plain.subscribe(prefix.replace(".", "/") + "/#", qos=1)
    assert await asyncio.to_thread(subscribed.wait, TIMEOUT)
    sent = Message(f"{prefix}.a.b", {"n": 1, "text": "héllo"}, headers={"h": "v ✓"})
    await bus.publish(sent)
    [(topic, payload, properties)] = await asyncio.to_thread(inbox.wait, 1)
    assert topic == prefix.replace(".", "/") + "/a/b"
    assert json.loads(payload) == {"n": 1, "text": "héllo"}
    user = dict(properties.UserProperty)
    assert (user["h"], user["moksha-id"]) == ("v ✓", sent.id)
    assert properties.ContentType == "application/json"


async def test_patterns_mqtt_cannot_say_are_filtered_to_amqp_meaning(bus, prefix, group):
    received, grouped = Received(), Received()
    patterns = [f"{prefix}.#.end", f"{prefix}.a.*"]
    await bus.subscribe(patterns, received)
    await bus.subscribe(patterns, grouped, group=group)
    try:
        for suffix in ("end", "x.y.end", "a.b", "a.b.c", "endx", "x.endx", "z"):
            await bus.publish(Message(f"{prefix}.{suffix}", suffix))
        await bus.publish(Message(f"{prefix}.last.end", "marker"))
        await received.wait_until(lambda: "marker" in received.bodies)
        await grouped.wait_until(lambda: "marker" in grouped.bodies)
        expected = ["a.b", "end", "marker", "x.y.end"]
        assert sorted(received.bodies) == expected
        assert sorted(grouped.bodies) == expected
    finally:
        await cleanup(bus, group)


async def test_a_group_gets_what_was_published_while_no_hub_ran(bus, prefix, group):
    """The group's session (clean start off, an expiry) keeps the messages for it."""
    first = Received()
    subscription = await bus.subscribe([f"{prefix}.job"], first, group=group)
    await bus.publish(Message(f"{prefix}.job", "before"))
    await first.wait(1)
    await subscription.cancel()
    try:
        for i in range(3):
            await bus.publish(Message(f"{prefix}.job", i))  # nobody of the group is connected
        async with backend() as restarted:
            again = Received()
            await restarted.subscribe([f"{prefix}.job"], again, group=group)
            assert [m.body for m in await again.wait(3)] == [0, 1, 2]
    finally:
        await cleanup(bus, group)


async def test_hubs_of_one_group_share_its_messages(prefix, group):
    """Shared subscription: two hubs (two nodes), every message handled once in all."""
    one, two = Received(), Received()
    async with backend(mqtt_node="node-one") as a, backend(mqtt_node="node-two") as b:
        await a.subscribe([f"{prefix}.job"], one, group=group)
        await b.subscribe([f"{prefix}.job"], two, group=group)
        total = 40
        for i in range(total):
            await a.publish(Message(f"{prefix}.job", i))
        await until(lambda: len(one.messages) + len(two.messages) >= total)
        assert sorted(one.bodies + two.bodies) == list(range(total))
        assert one.messages and two.messages
        await b.close()
        await cleanup(a, group)


async def test_moksha_queues_lists_a_groups_session_and_deletes_it_once_no_hub_runs(
    bus, prefix, group
):
    subscription = await bus.subscribe(
        [f"{prefix}.job", f"{prefix}.other"], Received(), group=group
    )
    [queue] = [q for q in await bus.durable_queues() if q.group == group]
    assert queue.patterns == (f"{prefix}.job", f"{prefix}.other")
    assert queue.consumers == 1
    with pytest.raises(BackendError, match="connected"):
        await bus.delete_durable_queue(queue.name)
    await subscription.cancel()
    [queue] = [q for q in await bus.durable_queues() if q.group == group]
    assert queue.consumers == 0
    await bus.publish(Message(f"{prefix}.job", "queued, then deleted with the session"))
    await bus.delete_durable_queue(queue.name)
    assert [q for q in await bus.durable_queues() if q.group == group] == []
    fresh = Received()
    await bus.subscribe([f"{prefix}.job"], fresh, group=group)
    await bus.publish(Message(f"{prefix}.job", "new"))
    assert [m.body for m in await fresh.wait(1)] == ["new"]
    await cleanup(bus, group)
    with pytest.raises(BackendError, match="not a session"):
        await bus.delete_durable_queue("moksha:not-ours")


async def test_a_bad_url_names_the_key_and_a_dead_broker_is_unavailable(bus):
    with pytest.raises(ConfigError, match="mqtt_url"):
        backend(mqtt_url="http://127.0.0.1:1883")
    nobody = free_endpoint().replace("tcp://", "mqtt://")
    with pytest.raises(BackendUnavailable, match="cannot reach the MQTT broker"):
        async with backend(mqtt_url=nobody):
            pass
    with pytest.raises(MessageError, match="cannot travel on MQTT"):
        await bus.publish(Message("a/b.c", 1))


def test_the_url_password_is_not_shown():
    config = load_config(
        overrides=settings(mqtt_url="mqtt://user:s3cret@127.0.0.1:1883"), environ={}, search=False
    )
    assert "s3cret" not in repr(config)


# Connections cut under a running backend (tests/tcp_proxy.py).


async def test_a_failed_delivery_comes_again_when_the_session_reconnects(prefix, group):
    """MQTT has no nack: what the handler did not finish stays unacknowledged in the session."""
    calls: list[Any] = []

    async def flaky(message: Message) -> None:
        calls.append(message.body)
        if len(calls) == 1:
            raise RuntimeError("not now")

    async with (
        TcpProxy(1883) as proxy,
        backend(mqtt_url=f"mqtt://127.0.0.1:{proxy.port}") as bus,
    ):
        await bus.subscribe([f"{prefix}.job"], flaky, group=group)
        await bus.publish(Message(f"{prefix}.job", "again"))
        await until(lambda: len(calls) == 1)
        await proxy.cut()
        await until(lambda: len(calls) == 2)
        await cleanup(bus, group)
    assert calls == ["again", "again"]


async def test_every_message_is_consumed_despite_cut_connections(prefix, group):
    received = Received()
    async with TcpProxy(1883) as proxy:
        url = f"mqtt://127.0.0.1:{proxy.port}"
        async with backend(mqtt_url=url) as consumer, backend(mqtt_url=url) as publisher:
            await consumer.subscribe([f"{prefix}.n"], received, group=group)
            for i in range(300):
                if i % 100 == 50:
                    await proxy.cut()  # every connection, mid-stream
                await publisher.publish(Message(f"{prefix}.n", i))
            await until(lambda: set(received.bodies) == set(range(300)), timeout=3 * TIMEOUT)
            await cleanup(consumer, group)
    assert proxy.connections_made >= 6


def test_the_topic_mapping_examples_hold() -> None:
    import doctest

    from moksha.hub.backends import mqtt_wire

    assert doctest.testmod(mqtt_wire).failed == 0


def test_received_properties_read_as_paho_reads_them() -> None:
    """Moksha's quick reader gives paho's own result, or leaves the packet to paho."""
    import doctest

    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from moksha.hub.backends import mqtt_inbound

    assert doctest.testmod(mqtt_inbound).failed == 0
    sent = Properties(PacketTypes.PUBLISH)
    sent.ContentType = "application/json"
    sent.UserProperty = [("moksha-id", "x1"), ("h", "v ✓"), ("h", "twice")]
    sent.SubscriptionIdentifier = 7
    packed = sent.pack() + b'{"n": 1}'
    paho_reads, paho_used = Properties(PacketTypes.PUBLISH).unpack(packed)
    ours, used = mqtt_inbound.read_publish_properties(packed)
    assert used == paho_used
    for name in ("ContentType", "UserProperty", "SubscriptionIdentifier"):
        assert getattr(ours, name) == getattr(paho_reads, name)
    sent.ResponseTopic = "reply/here"  # not one of Moksha's: paho's parser reads it
    with pytest.raises(mqtt_inbound._Unusual):
        mqtt_inbound.read_publish_properties(sent.pack())


async def test_a_device_messages_properties_become_headers_whatever_else_it_sends(
    bus, plain, prefix
):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    received = Received()
    await bus.subscribe([f"{prefix}.#"], received)
    topic = prefix.replace(".", "/")
    for n, extra in enumerate((False, True)):
        properties = Properties(PacketTypes.PUBLISH)
        properties.UserProperty = [("moksha-id", f"dev-{n}"), ("room", "kitchen ✓")]
        if extra:
            properties.ResponseTopic = "reply/here"
            properties.MessageExpiryInterval = 60
        plain.publish(f"{topic}/{n}", json.dumps({"n": n}), qos=n % 2, properties=properties)
    messages = await received.wait(2)
    assert sorted((m.id, m.topic, m.body, m.headers["room"]) for m in messages) == [
        ("dev-0", f"{prefix}.0", {"n": 0}, "kitchen ✓"),
        ("dev-1", f"{prefix}.1", {"n": 1}, "kitchen ✓"),
    ]
