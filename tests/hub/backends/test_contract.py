"""The contract every backend keeps, run against each of them.

A backend joins this suite by adding a case to ``support.BACKENDS``: a name
and a function returning its config (after checking its broker is reachable).
"""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from moksha.config import load_config
from moksha.hub.backends import Backend, backend_class
from moksha.message import Message
from support import BACKENDS, TIMEOUT, Received


@pytest.fixture(params=sorted(BACKENDS))
async def backend(request):
    settings = BACKENDS[request.param]()
    config = load_config(overrides=settings, environ={}, search=False)
    [name] = config.backends
    async with backend_class(name)(config) as connected:
        yield connected


@pytest.fixture
def prefix() -> str:
    return f"contract.{uuid4().hex[:12]}"


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
