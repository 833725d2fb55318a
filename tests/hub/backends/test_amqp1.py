"""AMQP 1.0 beyond the contract: plain proton and AMQP 0-9-1 clients both ways, the limits."""

from __future__ import annotations

import asyncio
import doctest
import json
import ssl
from typing import Any
from uuid import uuid4

import aio_pika
import pytest
from proton import Message as AMQPMessage
from proton.utils import BlockingConnection

import moksha.hub.backends.amqp1_options
import moksha.hub.backends.amqp1_queues
import moksha.hub.backends.amqp1_wire
from moksha.config import load_config
from moksha.errors import BackendUnavailable, ConfigError
from moksha.hub.backends.amqp1 import AMQP1Backend
from moksha.message import Message
from support import TIMEOUT, Received, amqp1, amqp1_source, until
from tcp_proxy import TcpProxy

URL = "amqp://guest:guest@127.0.0.1:5672"
AMQP091 = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture
def settings() -> dict[str, Any]:
    return amqp1()


@pytest.fixture
def prefix() -> str:
    return f"amqp1.{uuid4().hex[:12]}"


def backend(settings: dict[str, Any], **more: Any) -> AMQP1Backend:
    return AMQP1Backend(load_config(overrides={**settings, **more}, environ={}, search=False))


def test_the_wire_examples_hold() -> None:
    assert doctest.testmod(moksha.hub.backends.amqp1_wire).failed == 0
    assert doctest.testmod(moksha.hub.backends.amqp1_queues).failed == 0
    assert doctest.testmod(moksha.hub.backends.amqp1_options).failed == 0


def plain_send(address: str, message: AMQPMessage) -> None:
    """A plain proton program: blocking connection, one sender, one message."""
    connection = BlockingConnection(URL, timeout=TIMEOUT)
    try:
        connection.create_sender(address).send(message)
    finally:
        connection.close()


async def test_plain_proton_clients_and_moksha_talk_both_ways(settings, prefix):
    async with amqp1_source(f"{prefix}.out.*") as source:
        await talk_both_ways(settings, prefix, source)


async def talk_both_ways(settings: dict[str, Any], prefix: str, source: str) -> None:
    connection = await asyncio.to_thread(BlockingConnection, URL, timeout=TIMEOUT)
    receiver = await asyncio.to_thread(connection.create_receiver, source)
    try:
        async with backend(settings) as bus:
            received, literal = Received(), Received()
            await bus.subscribe([f"{prefix}.in.#"], received)
            await bus.subscribe([f"{prefix}.lit"], literal)
            sent = Message(f"{prefix}.out.x", {"from": "moksha ✓"}, headers={"h": "v"})
            await bus.publish(sent)
            incoming = await asyncio.to_thread(receiver.receive, TIMEOUT)
            await asyncio.to_thread(receiver.accept)

            # A JSON string with its subject; an AMQP map; no subject at all (the
            # broker passes no routing key on: only a literal pattern knows the topic).
            text = AMQPMessage(
                body=json.dumps({"from": "proton"}),
                content_type="application/json",
                subject=f"{prefix}.in.a",
            )
            await asyncio.to_thread(plain_send, f"/topic/{prefix}.in.a", text)
            mapped = AMQPMessage(body={"n": 1}, subject=f"{prefix}.in.b.c")
            await asyncio.to_thread(plain_send, "/exchange/amq.topic", mapped)
            bare = AMQPMessage(body="just text")
            await asyncio.to_thread(plain_send, f"/topic/{prefix}.lit", bare)
            first, second = await received.wait(2)
            [third] = await literal.wait(1)
    finally:
        await asyncio.to_thread(connection.close)
    assert incoming.subject == f"{prefix}.out.x"
    assert json.loads(bytes(incoming.body)) == {"from": "moksha ✓"}
    assert (incoming.id, incoming.properties) == (sent.id, {"h": "v"})
    assert (first.topic, first.body) == (f"{prefix}.in.a", {"from": "proton"})
    assert (second.topic, second.body) == (f"{prefix}.in.b.c", {"n": 1})
    assert (third.topic, third.body, third.headers) == (f"{prefix}.lit", "just text", {})


async def test_amqp_0_9_1_clients_see_the_same_topics_but_their_headers_do_not_cross(
    settings, prefix
):
    async with await aio_pika.connect(AMQP091) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind("amq.topic", f"{prefix}.out")
        async with backend(settings) as bus:
            received = Received()
            await bus.subscribe([f"{prefix}.in"], received)
            await bus.publish(Message(f"{prefix}.out", {"to": "0-9-1"}))
            async with asyncio.timeout(TIMEOUT):
                async with queue.iterator() as messages:
                    async for incoming in messages:
                        await incoming.ack()
                        break
            exchange = await channel.get_exchange("amq.topic")
            body = json.dumps({"from": "0-9-1"}).encode()
            await exchange.publish(
                aio_pika.Message(body, headers={"h": "lost"}, content_type="application/json"),
                routing_key=f"{prefix}.in",
            )
            [message] = await received.wait(1)
    assert (incoming.routing_key, json.loads(incoming.body)) == (f"{prefix}.out", {"to": "0-9-1"})
    assert (message.topic, message.body) == (f"{prefix}.in", {"from": "0-9-1"})
    assert "h" not in message.headers  # what the plugin cannot carry (README)
    assert message.id


async def test_a_group_shares_no_work_on_this_plugin(settings, prefix):
    """The plugin's /topic sources are one queue per link: every group member gets it all."""
    one, two = Received(), Received()
    async with backend(settings) as first, backend(settings) as second:
        await first.subscribe([f"{prefix}.job"], one, group="workers")
        await second.subscribe([f"{prefix}.job"], two, group="workers")
        assert not first.capabilities.durable
        await first.publish(Message(f"{prefix}.job", 1))
        await one.wait(1)
        await two.wait(1)


async def test_an_unreachable_broker_is_a_clear_error(settings):
    bus = backend(settings, amqp1_url="amqp://guest:s3cret@127.0.0.1:1")
    with pytest.raises(BackendUnavailable, match=r"cannot reach 127\.0\.0\.1:1") as raised:
        await bus.connect()
    assert "s3cret" not in str(raised.value)
    assert not bus.connected


async def test_links_come_back_after_the_connection_is_cut(settings, prefix):
    async with TcpProxy(5672) as proxy:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}"
        async with backend(settings, amqp1_url=url, **{"moksha.reconnect_delay": 0.1}) as bus:
            received = Received()
            await bus.subscribe([f"{prefix}.#"], received)
            before = proxy.connections_made
            await proxy.cut()
            async with asyncio.timeout(TIMEOUT):
                while bus.connected:  # the reactor noticed
                    await asyncio.sleep(0.01)
                while not bus.connected:  # and reconnected by itself
                    await asyncio.sleep(0.01)
            await received.resend_until_one(lambda: bus.publish(Message(f"{prefix}.after", 1)))
        assert proxy.connections_made > before  # it connected again
    assert received.messages[0].topic == f"{prefix}.after"


async def test_a_queue_the_broker_dropped_meanwhile_is_declared_again(settings, prefix):
    """Away longer than x-expires, the subscription's queue is gone: it comes back, empty."""
    async with TcpProxy(5672) as proxy:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}"
        async with backend(settings, amqp1_url=url, **{"moksha.reconnect_delay": 0.1}) as bus:
            received = Received()
            subscription = await bus.subscribe([f"{prefix}.#"], received)
            proxy.refuse = True
            await proxy.cut()
            async with await aio_pika.connect(AMQP091) as connection:  # as x-expires would
                channel = await connection.channel()
                await channel.queue_delete(subscription.queue)
            proxy.refuse = False
            await until(lambda: bus.connected)
            await received.resend_until_one(lambda: bus.publish(Message(f"{prefix}.back", 1)))
    assert received.messages[0].topic == f"{prefix}.back"


async def test_no_accepted_publish_is_lost_when_the_connection_is_cut(settings, prefix):
    """A publish either returned (the broker has it) or failed; those that returned arrive.

    The publisher's connection is cut while 2000 publishes are on the way: the ones
    sent but not settled fail with BackendUnavailable (the hub would retry them);
    the ones not sent yet go once it reconnected.
    """
    received = Received()
    async with TcpProxy(5672) as proxy, backend(settings) as receiving:
        await receiving.subscribe([f"{prefix}.n"], received)
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}"
        async with backend(settings, amqp1_url=url, **{"moksha.reconnect_delay": 0.1}) as bus:
            publishes = [bus.publish(Message(f"{prefix}.n", n)) for n in range(2000)]
            outcomes = asyncio.gather(*publishes, return_exceptions=True)
            await received.wait_until(lambda: len(received.messages) >= 200)
            await proxy.cut()
            results = await outcomes
        accepted = {n for n, result in enumerate(results) if result is None}
        await received.wait_until(lambda: accepted <= set(received.bodies), timeout=2 * TIMEOUT)
    failures = [r for r in results if r is not None]
    assert all(isinstance(failure, BackendUnavailable) for failure in failures), failures
    assert len(accepted) + len(failures) == 2000


async def test_amqps_is_tls_through_asyncio(settings, prefix, tls_files, monkeypatch):
    """No TLS listener on the test broker: a proxy ends TLS in front of its plain port."""
    key, crt = tls_files
    monkeypatch.setenv("SSL_CERT_FILE", crt)  # the "system" CA store now trusts the proxy
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(crt, key)
    async with TcpProxy(5672, tls=server) as proxy:
        url = f"amqps://guest:guest@127.0.0.1:{proxy.port}"
        async with backend(settings, amqp1_url=url) as bus:
            received = Received()
            await bus.subscribe([f"{prefix}.secure"], received)
            await bus.publish(Message(f"{prefix}.secure", {"over": "tls"}))
            [message] = await received.wait(1)
    assert message.body == {"over": "tls"}


async def test_amqps_verifies_the_broker_certificate(settings, tls_files):
    key, crt = tls_files  # not trusted by the system CA store
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(crt, key)
    async with TcpProxy(5672, tls=server) as proxy:
        bus = backend(settings, amqp1_url=f"amqps://guest:guest@127.0.0.1:{proxy.port}")
        with pytest.raises(BackendUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await bus.connect()


@pytest.mark.parametrize("url", ["http://u:s3cret@127.0.0.1:5672", "amqp://u:s3cret@h:port"])
def test_a_url_that_is_not_amqp_is_a_config_error(settings, url):
    with pytest.raises(ConfigError, match="amqp1_url") as raised:
        backend(settings, amqp1_url=url)
    assert "s3cret" not in str(raised.value)


async def test_closing_while_reconnecting_fails_waiting_publishes_and_stops_everything(
    settings, prefix
):
    async with TcpProxy(5672) as proxy:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}"
        bus = backend(settings, amqp1_url=url, **{"moksha.reconnect_delay": 0.1})
        before = asyncio.all_tasks()
        await bus.connect()
        proxy.refuse = True
        await proxy.cut()
        await until(lambda: not bus.connected)
        waiting = asyncio.gather(bus.publish(Message(f"{prefix}.x", 1)), return_exceptions=True)
        await bus.close()  # the publish starts while this waits, and waits for a connection
        [outcome] = await waiting
        assert asyncio.all_tasks() == before
    assert isinstance(outcome, BackendUnavailable)
    assert "closed before the broker settled it" in str(outcome)
