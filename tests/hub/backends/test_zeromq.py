"""The ZeroMQ backend: wire interop with plain pyzmq, patterns, endpoints, readiness.

No broker: every socket binds a free port on 127.0.0.1.  Where a subscription
travels to a publisher we do not own (the "slow joiner"), tests resend until
the first message arrives, bounded by ``TIMEOUT``; the contract suite
(``test_contract.py -k zeromq``) checks that a backend subscribed to its own
endpoint needs no such retry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import uuid4

import pytest
import zmq
import zmq.asyncio

from moksha.config import load_config
from moksha.errors import BackendError, BackendUnavailable, ConfigError
from moksha.hub.backends import backend_class
from moksha.hub.backends.zeromq import ZeroMQBackend
from moksha.message import Message
from support import TIMEOUT, Received, free_endpoint

LOOPBACK_ANY_PORT = "tcp://127.0.0.1:*"
Open = Callable[..., Awaitable[ZeroMQBackend]]


def zmq_config(**settings: Any) -> Any:
    return load_config(overrides={"zmq_enabled": True, **settings}, environ={}, search=False)


@pytest.fixture
def topic() -> str:
    return f"zmqtest.{uuid4().hex[:12]}"


@pytest.fixture
async def open_backend() -> AsyncIterator[Open]:
    opened: list[ZeroMQBackend] = []

    async def open_(**settings: Any) -> ZeroMQBackend:
        backend = ZeroMQBackend(zmq_config(**settings))
        await backend.connect()
        opened.append(backend)
        return backend

    yield open_
    for backend in opened:
        await backend.close()


@pytest.fixture
async def own_loop(open_backend: Open) -> ZeroMQBackend:
    """A backend subscribed to its own publish endpoint, configured as in the contract suite."""
    endpoint = free_endpoint()
    return await open_backend(
        zmq_publish_endpoints=endpoint,
        zmq_subscribe_endpoints=endpoint,
        zmq_strict=True,
        zmq_metadata_frame=True,
    )


@pytest.fixture
def context() -> Any:
    ctx = zmq.asyncio.Context()
    yield ctx
    ctx.destroy(linger=0)


def raw_pub(context: Any, *, bind: str | None = LOOPBACK_ANY_PORT) -> tuple[Any, str]:
    pub = context.socket(zmq.PUB)
    if bind:
        pub.bind(bind)
    return pub, pub.getsockopt_string(zmq.LAST_ENDPOINT) if bind else ""


# -- registration and lifecycle --------------------------------------------


def test_it_is_the_zeromq_backend_when_zmq_is_enabled():
    assert backend_class("zeromq") is ZeroMQBackend
    assert ZeroMQBackend.configured(zmq_config())
    assert not ZeroMQBackend.configured(zmq_config(zmq_enabled=False))
    assert ZeroMQBackend.capabilities.cross_process
    assert not ZeroMQBackend.capabilities.acknowledgements


async def test_subscriptions_made_before_connect_apply_on_connect(topic):
    endpoint = free_endpoint()
    backend = ZeroMQBackend(
        zmq_config(zmq_publish_endpoints=endpoint, zmq_subscribe_endpoints=endpoint)
    )
    received = Received()
    await backend.subscribe([f"{topic}.#"], received)
    with pytest.raises(BackendUnavailable, match="not connected"):
        await backend.publish(Message(f"{topic}.early", 0))
    async with backend:
        assert backend.connected
        await backend.publish(Message(f"{topic}.x", 1))  # no resend: connect waited for the link
        await received.wait(1)
    assert not backend.connected
    assert received.bodies == [1]


# -- interop with plain pyzmq ----------------------------------------------


async def test_an_original_two_frame_message_reaches_our_subscriber(open_backend, context):
    pub, endpoint = raw_pub(context)
    backend = await open_backend(zmq_subscribe_endpoints=endpoint)
    received = Received()
    await backend.subscribe(["org.x.*"], received)

    message = await received.resend_until_one(lambda: pub.send_multipart([b"org.x.y", b'{"a": 1}']))
    assert (message.topic, message.body, message.headers) == ("org.x.y", {"a": 1}, {})
    assert message.id  # a new one, since the original sends none
    assert abs(message.timestamp_s - time.time()) < TIMEOUT


async def first_frames_on_a_plain_sub(backend: ZeroMQBackend, context: Any, sent: Message):
    """Publish ``sent`` until a plain pyzmq SUB on the backend's endpoint reads it."""
    [endpoint] = backend.publish_endpoints
    sub = context.socket(zmq.SUB)
    sub.connect(endpoint)
    sub.subscribe(sent.topic.encode())
    async with asyncio.timeout(TIMEOUT):
        while not await sub.poll(50):
            await backend.publish(sent)
        return await sub.recv_multipart()


async def test_by_default_our_message_is_the_originals_two_frames(open_backend, context):
    backend = await open_backend(zmq_publish_endpoints=LOOPBACK_ANY_PORT)
    sent = Message("org.y.z", {"n": 1, "text": "héllo"}, headers={"k": "v"})
    topic, body = await first_frames_on_a_plain_sub(backend, context, sent)  # exactly two
    assert topic == b"org.y.z"
    assert json.loads(body) == {"n": 1, "text": "héllo"}


async def test_with_zmq_metadata_frame_a_third_frame_carries_id_and_headers(open_backend, context):
    backend = await open_backend(zmq_publish_endpoints=LOOPBACK_ANY_PORT, zmq_metadata_frame=True)
    sent = Message("org.y.z", {"n": 1}, headers={"k": "v"})
    topic, body, meta = await first_frames_on_a_plain_sub(backend, context, sent)
    assert (topic, json.loads(body)) == (b"org.y.z", {"n": 1})
    assert json.loads(meta) == {"id": sent.id, "timestamp": sent.timestamp_s, "headers": {"k": "v"}}


async def test_malformed_messages_are_dropped_with_one_warning(open_backend, context, caplog):
    pub, endpoint = raw_pub(context)
    backend = await open_backend(zmq_subscribe_endpoints=endpoint)
    received = Received()
    await backend.subscribe(["org.m.#"], received)
    await received.resend_until_one(lambda: pub.send_multipart([b"org.m.warm", b"0"]))

    with caplog.at_level(logging.WARNING, logger="moksha.hub.backends.zeromq"):
        for _ in range(5):
            await pub.send_multipart([b"org.m.one-frame"])
        await pub.send_multipart([b"org.m.bad-meta", b"1", b"{not json"])
        await pub.send_multipart([b"org.m.good", b"2"])
        await received.wait_until(lambda: received.messages[-1].topic == "org.m.good")

    assert {m.topic for m in received.messages} == {"org.m.warm", "org.m.good"}
    assert backend.malformed == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # not one line per bad message
    assert "1 frame(s)" in warnings[0] and "org.m.one-frame" in warnings[0]


async def test_subscribe_method_bind_takes_a_connecting_publisher(open_backend, context):
    endpoint = free_endpoint()
    backend = await open_backend(zmq_subscribe_endpoints=endpoint, zmq_subscribe_method="bind")
    received = Received()
    await backend.subscribe(["bound.#"], received)
    pub, _ = raw_pub(context, bind=None)
    pub.connect(endpoint)

    message = await received.resend_until_one(lambda: pub.send_multipart([b"bound.in", b"[1]"]))
    assert (message.topic, message.body) == ("bound.in", [1])


async def test_two_hubs_on_different_ports_talk(open_backend, topic):
    # Ids and headers travel in the metadata frame.
    a = await open_backend(zmq_publish_endpoints=LOOPBACK_ANY_PORT, zmq_metadata_frame=True)
    b = await open_backend(
        zmq_publish_endpoints=LOOPBACK_ANY_PORT, zmq_subscribe_endpoints=a.publish_endpoints[0]
    )
    assert a.publish_endpoints != b.publish_endpoints
    warm, received = Received(), Received()
    await b.subscribe([f"{topic}.warm"], warm)
    await b.subscribe([f"{topic}.n"], received)
    await warm.resend_until_one(lambda: a.publish(Message(f"{topic}.warm", "warm")))

    sent = [Message(f"{topic}.n", i, headers={"i": str(i)}) for i in range(100)]
    for message in sent:
        await a.publish(message)
    got = await received.wait(100)
    assert [(m.id, m.body, m.headers) for m in got] == [(m.id, m.body, m.headers) for m in sent]


async def test_a_subscriber_started_first_receives_once_the_publisher_is_up(open_backend, topic):
    endpoint = free_endpoint()
    late = await open_backend(zmq_subscribe_endpoints=endpoint, zmq_reconnect_ivl=20)
    received = Received()
    await late.subscribe([topic], received)
    publisher = await open_backend(zmq_publish_endpoints=endpoint)

    message = await received.resend_until_one(lambda: publisher.publish(Message(topic, "up")))
    assert message.body == "up"


# -- patterns ---------------------------------------------------------------


async def _deliveries(
    backend: ZeroMQBackend, topic: str, patterns: list[str], suffixes: list[str]
) -> list[list[str]]:
    """Subscribe one handler per pattern, publish ``topic.<suffix>`` each, return what each got."""
    handlers = [Received() for _ in patterns]
    for pattern, handler in zip(patterns, handlers, strict=True):
        await backend.subscribe([f"{topic}.{pattern}"], handler)
    done = Received()
    await backend.subscribe([f"{topic}-done"], done)
    for suffix in suffixes:
        await backend.publish(Message(f"{topic}.{suffix}", suffix))
    await backend.publish(Message(f"{topic}-done", None))  # one SUB socket: order is kept
    await done.wait(1)
    return [handler.bodies for handler in handlers]


async def test_wildcards_follow_the_amqp_rules(own_loop, topic):
    got = await _deliveries(
        own_loop, topic, ["a.*", "a.#", "a.b"], ["a", "a.b", "a.b.c", "a.bc", "ab"]
    )
    assert got == [["a.b", "a.bc"], ["a", "a.b", "a.b.c", "a.bc"], ["a.b"]]


async def test_loose_matching_when_zmq_strict_is_off(open_backend, topic):
    endpoint = free_endpoint()
    loose = await open_backend(
        zmq_publish_endpoints=endpoint, zmq_subscribe_endpoints=endpoint, zmq_strict=False
    )
    got = await _deliveries(loose, topic, ["a.b", "a.*"], ["a", "a.b", "a.b.c", "a.bc", "x"])
    # A plain pattern matches the topics it is a string prefix of; wildcards stay AMQP.
    assert got == [["a.b", "a.b.c", "a.bc"], ["a.b", "a.bc"]]


async def test_a_cancelled_loose_subscription_gets_nothing_more(open_backend, topic):
    endpoint = free_endpoint()
    loose = await open_backend(zmq_publish_endpoints=endpoint, zmq_subscribe_endpoints=endpoint)
    cancelled, kept = Received(), Received()
    subscription = await loose.subscribe([f"{topic}.a"], cancelled)
    await loose.subscribe([f"{topic}.a"], kept)
    await loose.publish(Message(f"{topic}.a.b", 1))
    await kept.wait(1)
    await subscription.cancel()
    await loose.publish(Message(f"{topic}.a.b", 2))  # the same topic, after the cancel
    await kept.wait(2)
    assert (cancelled.bodies, kept.bodies) == ([1], [1, 2])


async def test_cancel_unsubscribes_once_no_pattern_needs_the_prefix(open_backend, context):
    xpub = context.socket(zmq.XPUB)
    xpub.bind(LOOPBACK_ANY_PORT)
    backend = await open_backend(zmq_subscribe_endpoints=xpub.getsockopt_string(zmq.LAST_ENDPOINT))

    async def next_subscription_message() -> bytes:
        async with asyncio.timeout(TIMEOUT):
            return await xpub.recv()

    first = await backend.subscribe(["pfx.*"], Received())
    second = await backend.subscribe(["pfx.*", "pfx.a.#"], Received())
    subscribed = {await next_subscription_message() for _ in range(2)}
    assert subscribed == {b"\x01pfx.", b"\x01pfx.a"}  # "pfx.a.#" matches "pfx.a" too
    await first.cancel()
    await backend.subscribe(["marker"], Received())
    # Nothing came before the marker's subscription: "pfx." is still needed by `second`.
    assert await next_subscription_message() == b"\x01marker"
    await second.cancel()
    assert {await next_subscription_message() for _ in range(2)} == {b"\x00pfx.", b"\x00pfx.a"}


# -- robustness -------------------------------------------------------------


async def test_a_failing_handler_does_not_stop_the_reader(own_loop, topic, caplog):
    async def failing(message: Message) -> None:
        raise RuntimeError("consumer bug")

    received = Received()
    await own_loop.subscribe([topic], failing)
    await own_loop.subscribe([topic], received)
    await own_loop.publish(Message(topic, 1))
    await own_loop.publish(Message(topic, 2))
    await received.wait(2)
    assert received.bodies == [1, 2]
    assert any(r.exc_info and "consumer bug" in str(r.exc_info[1]) for r in caplog.records)


async def test_publishing_past_the_high_water_mark_drops_instead_of_blocking(
    open_backend, context, topic
):
    backend = await open_backend(zmq_publish_endpoints=LOOPBACK_ANY_PORT, zmq_hwm=10)
    stalled = context.socket(zmq.SUB)
    stalled.setsockopt(zmq.RCVHWM, 10)
    stalled.connect(backend.publish_endpoints[0])
    stalled.subscribe(topic.encode())
    async with asyncio.timeout(TIMEOUT):
        while not await stalled.poll(50):
            await backend.publish(Message(topic, "warm"))

    body = "x" * 10_000  # 20 MB in all: more than socket queues and TCP buffers hold
    async with asyncio.timeout(TIMEOUT):
        for i in range(2000):
            await backend.publish(Message(topic, {"i": i, "pad": body}))
    got = 0
    while await stalled.poll(200):
        await stalled.recv_multipart()
        got += 1
    assert got < 2000


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"zmq_publish_endpoints": "tcp://127.0.0.1:not-a-port"}, "zmq_publish_endpoints"),
        ({"zmq_publish_endpoints": "carrier-pigeon://x"}, "zmq_publish_endpoints"),
        ({"zmq_subscribe_endpoints": "tcp://127.0.0.1:*"}, "zmq_subscribe_endpoints"),
        ({}, "zmq_publish_endpoints"),  # enabled, but nowhere to publish or subscribe
    ],
)
async def test_a_bad_endpoint_is_a_config_error_naming_the_key(settings, key):
    backend = ZeroMQBackend(zmq_config(**settings))
    with pytest.raises(ConfigError) as caught:
        await backend.connect()
    assert caught.value.key == key
    assert all(value in str(caught.value) for value in settings.values())
    assert not backend.connected


async def test_an_endpoint_in_use_is_a_clear_error(context):
    squatter = context.socket(zmq.PUB)
    squatter.bind(LOOPBACK_ANY_PORT)
    endpoint = squatter.getsockopt_string(zmq.LAST_ENDPOINT)
    backend = ZeroMQBackend(zmq_config(zmq_publish_endpoints=endpoint))
    with pytest.raises(BackendError) as caught:
        await backend.connect()
    message = str(caught.value)
    assert endpoint in message and "zmq_publish_endpoints" in message
    assert "already in use" in message
    assert not backend.connected


async def test_keepalive_options_are_accepted(open_backend, topic):
    endpoint = free_endpoint()
    backend = await open_backend(
        zmq_publish_endpoints=endpoint,
        zmq_subscribe_endpoints=endpoint,
        zmq_tcp_keepalive=True,
        zmq_tcp_keepalive_idle=5,
    )
    received = Received()
    await backend.subscribe([topic], received)
    await backend.publish(Message(topic, "alive"))
    assert [m.body for m in await received.wait(1)] == ["alive"]
