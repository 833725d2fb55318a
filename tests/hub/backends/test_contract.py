"""The contract every backend keeps, run against each of them.

A backend joins this suite by adding a case to ``support.BACKENDS``: a name
and a function returning its config (after checking its broker is reachable).
"""

from __future__ import annotations

import asyncio
import json
from uuid import uuid4

import pytest
import zmq
import zmq.asyncio

from moksha.config import load_config
from moksha.errors import MessageError
from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer
from moksha.hub.backends import Backend, backend_class
from moksha.message import Message
from support import BACKENDS, SPACE, TIMEOUT, Received, free_endpoint


@pytest.fixture(params=sorted(BACKENDS))
async def backend(request):
    settings = BACKENDS[request.param]()
    config = load_config(overrides=settings, environ={}, search=False)
    [name] = config.backends
    async with backend_class(name)(config) as connected:
        yield connected


@pytest.fixture
def prefix() -> str:
    return f"{SPACE}.contract.{uuid4().hex[:12]}"


async def marker(backend: Backend, received: Received, topic: str) -> None:
    """Publish a marker and wait for it: whatever was published before has arrived."""
    await backend.publish(Message(topic, "marker"))
    async with asyncio.timeout(TIMEOUT):
        while not any(m.body == "marker" for m in received.messages):
            await received.wait(len(received.messages) + 1)
    assert received.messages[-1].body == "marker"
    received.messages.pop()


async def test_a_published_message_arrives_whole(backend, prefix):
    received = Received()
    await backend.subscribe([f"{prefix}.event"], received)
    sent = Message(f"{prefix}.event", {"n": 1, "text": "héllo"}, headers={"h": "v"})
    await backend.publish(sent)
    [message] = await received.wait(1)
    assert message.topic == sent.topic
    assert message.body == {"n": 1, "text": "héllo"}
    assert message.headers["h"] == "v"
    assert message.id == sent.id
    assert abs(message.timestamp_s - sent.timestamp_s) < 1


async def test_patterns_mean_the_same_on_every_backend(backend, prefix):
    received = Received()
    await backend.subscribe([f"{prefix}.*.event", f"{prefix}.all.#"], received)
    await backend.subscribe([f"{prefix}.marker"], received)
    for suffix in ("a.event", "a.b.event", "event", "all", "all.x.y", "alls"):
        await backend.publish(Message(f"{prefix}.{suffix}", suffix))
    await marker(backend, received, f"{prefix}.marker")
    assert sorted(m.body for m in received.messages) == ["a.event", "all", "all.x.y"]


async def test_messages_arrive_in_order(backend, prefix):
    received = Received()
    await backend.subscribe([f"{prefix}.seq"], received)
    for i in range(200):
        await backend.publish(Message(f"{prefix}.seq", i))
    assert [m.body for m in await received.wait(200)] == list(range(200))


async def test_many_publishes_at_once_all_arrive(backend, prefix):
    # What a web app does under load: many requests publishing at the same moment.
    received = Received()
    await backend.subscribe([f"{prefix}.burst"], received)
    await asyncio.gather(*(backend.publish(Message(f"{prefix}.burst", i)) for i in range(300)))
    assert sorted(m.body for m in await received.wait(300)) == list(range(300))


async def test_a_cancelled_subscription_receives_nothing_more(backend, prefix):
    received, other = Received(), Received()
    subscription = await backend.subscribe([f"{prefix}.x"], received)
    await backend.subscribe([f"{prefix}.x"], other)
    await subscription.cancel()
    await subscription.cancel()  # twice is harmless
    await backend.publish(Message(f"{prefix}.x", 1))
    await other.wait(1)
    await marker(backend, other, f"{prefix}.x")
    assert received.messages == []


async def test_a_raw_payload_passes_through(backend, prefix):
    received = Received()
    await backend.subscribe([f"{prefix}.raw"], received)
    await backend.publish(Message(f"{prefix}.raw", payload=b"not json \x00\xff"))
    [message] = await received.wait(1)
    assert message.payload == b"not json \x00\xff"
    assert message.body == b"not json \x00\xff"


MIB = 1 << 20


async def test_a_1_mib_body_arrives_whole(backend, prefix):
    limit = getattr(backend, "max_payload", None)  # a server's own bound (NATS: max_payload)
    if limit is not None and limit < 2 * MIB:
        with pytest.raises(MessageError, match="max_payload"):  # refused, and saying why
            await backend.publish(Message(f"{prefix}.big.raw", payload=bytes(limit + 1)))
        pytest.skip(f"{backend.name}'s server takes messages of at most {limit} bytes")
    received = Received()
    await backend.subscribe([f"{prefix}.big.*"], received)
    text = "".join(chr(0x20 + i % 0x5F) for i in range(MIB))  # 1 MiB of printable ASCII
    raw = bytes(i % 256 for i in range(MIB))
    await backend.publish(Message(f"{prefix}.big.json", {"text": text}))
    await backend.publish(Message(f"{prefix}.big.raw", payload=raw))
    json_message, raw_message = await received.wait(2, timeout=3 * TIMEOUT)
    assert json_message.topic == f"{prefix}.big.json"
    assert json_message.body == {"text": text}
    assert raw_message.payload == raw


async def test_unicode_topics_headers_and_bodies_arrive_as_sent(backend, prefix):
    received = Received()
    await backend.subscribe([f"{prefix}.*.事件.#"], received)
    topic = f"{prefix}.café.事件.ünï😀"
    body = {"text": "héllo wörld ✓ 日本語 עברית 😀", "ключ": ["ä", "\u00a0", "\t\n"]}
    sent = Message(topic, body, headers={"note": "façade ✓ 日本"})
    await backend.publish(sent)
    await backend.publish(Message(f"{prefix}.cafe.事件", "ascii word, same pattern"))
    first, second = await received.wait(2)
    assert (first.topic, first.body, first.headers["note"]) == (topic, body, "façade ✓ 日本")
    assert (second.topic, second.body) == (f"{prefix}.cafe.事件", "ascii word, same pattern")


# -- ZeroMQ only: the original Moksha's wire, with its defaults --------------


async def test_zeromq_speaks_the_originals_two_frames_both_ways(prefix):
    """A hub with the default ZeroMQ settings, and plain pyzmq programs reading and
    writing exactly ``[topic, json]``, as the original hubs (txZMQ) did."""
    hub_endpoint, foreign_endpoint = free_endpoint(), free_endpoint()
    config = {
        "moksha.backends": "zeromq",
        "zmq_enabled": True,
        "zmq_publish_endpoints": hub_endpoint,
        "zmq_subscribe_endpoints": foreign_endpoint,
    }
    received = Received()

    class OriginalReader(Consumer):
        topic = f"{prefix}.in"

        async def consume(self, message):
            await received(message)

    context = zmq.asyncio.Context()
    pub, sub = context.socket(zmq.PUB), context.socket(zmq.SUB)
    try:
        pub.bind(foreign_endpoint)
        sub.connect(hub_endpoint)
        sub.subscribe(f"{prefix}.out".encode())
        async with CentralMokshaHub(config, [OriginalReader], []) as hub:
            # A plain publisher's two frames reach the consumer.
            frames = [f"{prefix}.in".encode(), json.dumps({"from": "pyzmq ✓"}).encode()]
            message = await received.resend_until_one(lambda: pub.send_multipart(frames))
            assert (message.topic, message.body) == (f"{prefix}.in", {"from": "pyzmq ✓"})
            assert message.id  # given on arrival: two frames carry none

            # What the hub publishes is exactly two frames for a plain subscriber.
            async with asyncio.timeout(TIMEOUT):
                while not await sub.poll(50):
                    await hub.publish(f"{prefix}.out", {"from": "moksha ✓"})
                topic, body = await sub.recv_multipart()
    finally:
        pub.close(0)
        sub.close(0)
        context.term()
    assert (topic, json.loads(body)) == (f"{prefix}.out".encode(), {"from": "moksha ✓"})
