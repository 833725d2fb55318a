"""The STOMP backend against RabbitMQ's STOMP plugin on 127.0.0.1:61613.

Covers what the contract suite does not: options, the wire format seen by
plain aio-pika clients (both ways), consumer groups, acknowledgements,
failover, a broker down at start, connections cut mid-stream (at-least-once),
and ERROR frames.  Heart-beats, other brokers' matching rules and TLS are
tested against a tiny fake broker (:class:`FakeBroker`), which can fall silent
or deliver what RabbitMQ would not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import aio_pika
import pytest

from moksha.config import load_config
from moksha.errors import BackendError, BackendUnavailable, ConfigError, MessageError
from moksha.hub.backends.stomp import StompBackend
from moksha.hub.backends.stomp_options import Broker, StompOptions
from moksha.hub.backends.stomp_protocol import Frame, FrameParser, encode_frame
from moksha.hub.backends.stomp_subscription import GROUP_QUEUE_PREFIX
from moksha.message import Message
from support import TIMEOUT, Received, require_service, until
from tcp_proxy import TcpProxy

STOMP_PORT = 61613
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
FAST_RETRIES = {"moksha.reconnect_delay": 0.05, "moksha.reconnect_max_delay": 0.2}


def config_for(port: int = STOMP_PORT, **settings: Any):
    settings = {
        "stomp_uri": f"127.0.0.1:{port}",
        "stomp_user": "guest",
        "stomp_pass": "guest",
        **settings,
    }
    return load_config(overrides=settings, environ={}, search=False)


def backend_for(port: int = STOMP_PORT, **settings: Any) -> StompBackend:
    return StompBackend(config_for(port, **settings))


@contextmanager
def socket_closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield port


@pytest.fixture
def stomp() -> None:
    require_service("RabbitMQ STOMP", STOMP_PORT)


@pytest.fixture
def prefix() -> str:
    return f"test.stomp.{uuid4().hex[:12]}"


@pytest.fixture
async def raw(stomp: None) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A plain aio-pika channel on the same RabbitMQ, as a non-Moksha program would use."""
    require_service("RabbitMQ", 5672)
    async with await aio_pika.connect(AMQP) as connection:
        yield await connection.channel()


@pytest.fixture
async def group(raw: aio_pika.abc.AbstractChannel) -> AsyncIterator[str]:
    """A consumer-group name; its durable queue is deleted at teardown."""
    name = f"test-{uuid4().hex[:12]}"
    yield name
    await raw.queue_delete(GROUP_QUEUE_PREFIX + name)


# Options (no broker needed).


def test_brokers_come_from_stomp_uri_in_order() -> None:
    options = StompOptions.from_config(
        config_for(stomp_uri="a.example:1, stomp://[::1]:2,b.example", stomp_port=7)
    )
    assert options.brokers == (Broker("a.example", 1), Broker("::1", 2), Broker("b.example", 7))
    assert [str(b) for b in options.brokers] == ["a.example:1", "[::1]:2", "b.example:7"]


def test_stomp_broker_and_port_when_there_is_no_uri() -> None:
    config = load_config(
        overrides={"stomp_broker": "mq.example", "stomp_port": 61614}, environ={}, search=False
    )
    assert StompOptions.from_config(config).brokers == (Broker("mq.example", 61614),)
    assert StompBackend.configured(config)
    assert not StompBackend.configured(load_config(environ={}, search=False))


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"stomp_uri": "http://h:1"}, "stomp_uri"),
        ({"stomp_uri": "h:notaport"}, "stomp_uri"),
        ({"stomp_uri": " , "}, "stomp_uri"),
        ({"stomp_ssl_key": "/k.pem"}, "stomp_ssl_crt"),
        ({"stomp_ssl_key": "/nope/k.pem", "stomp_ssl_crt": "/nope/c.pem"}, "stomp_ssl_crt"),
        ({"stomp_prefetch": "many"}, "stomp_prefetch"),
    ],
)
def test_bad_options_name_their_key(settings: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        backend_for(**settings)


def test_acknowledgements_only_with_client_individual_acks() -> None:
    assert not backend_for().capabilities.acknowledgements  # "auto" is the default
    acking = backend_for(stomp_ack_mode="client-individual")
    assert acking.capabilities.acknowledgements
    assert acking.capabilities.native_wildcards and acking.capabilities.cross_process


async def test_a_reserved_header_is_refused_before_sending() -> None:
    backend = backend_for()
    with pytest.raises(MessageError, match="priority"):
        await backend.publish(Message("t", 1, headers={"priority": "high"}))


# The wire format, seen by plain AMQP clients of the same RabbitMQ.


async def test_a_publish_reaches_an_aio_pika_consumer(raw, prefix):
    queue = await raw.declare_queue(exclusive=True)
    await queue.bind("amq.topic", f"{prefix}.#")
    sent = Message(f"{prefix}.event", {"n": 1, "text": "héllo"}, headers={"app": "demo"})
    async with backend_for() as backend:
        await backend.publish(sent)
    async with asyncio.timeout(TIMEOUT):
        while (incoming := await queue.get(no_ack=True, fail=False)) is None:
            await asyncio.sleep(0.01)
    assert incoming.routing_key == sent.topic
    assert incoming.message_id == sent.id
    assert incoming.content_type == "application/json"
    assert incoming.headers == {"app": "demo"}  # no STOMP headers leak into AMQP ones
    assert incoming.body == sent.payload
    assert incoming.timestamp is not None
    assert abs(incoming.timestamp.timestamp() - sent.timestamp_s) < 1


async def test_an_aio_pika_publish_reaches_a_subscriber(raw, prefix):
    received = Received()
    stamp = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    async with backend_for() as backend:
        await backend.subscribe([f"{prefix}.*"], received)
        exchange = await raw.get_exchange("amq.topic")
        await exchange.publish(
            aio_pika.Message(
                b'{"a": [1, 2]}',
                message_id="from-amqp-1",
                timestamp=stamp,
                headers={"app": "demo", "k": "v"},
                content_type="application/json",
            ),
            routing_key=f"{prefix}.event",
        )
        [message] = await received.wait(1)
    assert message.topic == f"{prefix}.event"
    assert message.id == "from-amqp-1"
    assert message.headers == {"app": "demo", "k": "v"}
    assert message.body == {"a": [1, 2]}
    assert message.timestamp == stamp


async def test_topics_with_slashes_and_non_ascii_words_round_trip(stomp, prefix):
    received = Received()
    topic = f"{prefix}.café/bar%20.x"
    async with backend_for() as backend:
        await backend.subscribe([f"{prefix}.#"], received)
        await backend.publish(Message(topic, "ok"))
        [message] = await received.wait(1)
    assert message.topic == topic


async def test_a_raw_body_with_nul_bytes_round_trips(stomp, prefix):
    received = Received()
    payload = b"\x00head\x00\xff tail\x00"
    async with backend_for() as backend:
        await backend.subscribe([f"{prefix}.raw"], received)
        await backend.publish(Message(f"{prefix}.raw", payload=payload, headers={"h": "v"}))
        [message] = await received.wait(1)
    assert message.payload == payload
    assert message.headers == {"h": "v"}


# Groups and acknowledgements.


async def test_a_group_shares_the_work_between_two_hubs(stomp, prefix, group):
    first, second = Received(), Received()
    async with backend_for() as a, backend_for() as b, backend_for() as publisher:
        await a.subscribe([f"{prefix}.work.*"], first, group=group)
        await b.subscribe([f"{prefix}.work.*"], second, group=group)
        for i in range(50):
            await publisher.publish(Message(f"{prefix}.work.item", i))
        await until(lambda: len(first.messages) + len(second.messages) >= 50)
    assert sorted(first.bodies + second.bodies) == list(range(50))  # each handled once
    assert first.messages and second.messages


async def test_a_group_queue_keeps_messages_while_no_hub_runs(stomp, prefix, group):
    async with backend_for() as backend:
        subscription = await backend.subscribe([f"{prefix}.kept"], Received(), group=group)
        await subscription.cancel()  # the queue stays; nobody consumes it
        for i in range(5):
            await backend.publish(Message(f"{prefix}.kept", i))
    received = Received()
    async with backend_for() as backend:
        await backend.subscribe([f"{prefix}.kept"], received, group=group)
        await received.wait(5)
    assert received.bodies == list(range(5))


async def test_a_failed_handler_gets_the_message_again(stomp, prefix):
    calls: list[Message] = []
    handled = asyncio.Event()

    async def flaky(message: Message) -> None:
        calls.append(message)
        if len(calls) == 1:
            raise RuntimeError("not now")
        handled.set()

    async with backend_for(stomp_ack_mode="client-individual") as backend:
        await backend.subscribe([f"{prefix}.job"], flaky)
        await backend.publish(Message(f"{prefix}.job", "do it"))
        async with asyncio.timeout(TIMEOUT):
            await handled.wait()
    assert [m.id for m in calls] == [calls[0].id] * 2
    assert calls[1].body == "do it"


async def test_without_explicit_nacks_a_failed_message_returns_on_reconnection(
    stomp, prefix, group
):
    calls: list[Any] = []

    async def flaky(message: Message) -> None:
        calls.append(message.body)
        if len(calls) == 1:
            raise RuntimeError("not now")

    settings = {"stomp_ack_mode": "client-individual", "stomp_send_explicit_nacks": False}
    async with TcpProxy(STOMP_PORT) as proxy, backend_for(proxy.port, **settings) as backend:
        # A group's queue outlives the connection (an auto-delete one would not).
        await backend.subscribe([f"{prefix}.job"], flaky, group=group)
        await backend.publish(Message(f"{prefix}.job", "again"))
        await until(lambda: len(calls) == 1)
        await proxy.cut()  # the broker requeues what the lost connection left unacked
        await until(lambda: len(calls) == 2)
    assert calls == ["again", "again"]


# Connections: failover, broker down, cuts, heart-beats, errors.


async def test_failover_skips_a_dead_broker(stomp, prefix, caplog):
    with socket_closed_port() as dead:
        backend = backend_for(stomp_uri=f"127.0.0.1:{dead},127.0.0.1:{STOMP_PORT}")
        async with backend:
            assert backend.connected
            received = Received()
            await backend.subscribe([f"{prefix}.x"], received)
            await backend.publish(Message(f"{prefix}.x", 1))
            await received.wait(1)
    assert f"cannot reach 127.0.0.1:{dead}" in caplog.text
    assert f"trying 127.0.0.1:{STOMP_PORT} next" in caplog.text


async def test_a_broker_down_at_start_is_retried_and_the_passcode_never_logged(
    stomp, prefix, caplog
):
    caplog.set_level(logging.INFO, logger="moksha")
    received = Received()
    async with TcpProxy(STOMP_PORT) as proxy:
        proxy.refuse = True
        backend = backend_for(proxy.port, **FAST_RETRIES, **{"moksha.publish_timeout": 0.2})
        async with backend:
            assert not backend.connected  # connect() returned anyway
            await backend.subscribe([f"{prefix}.late"], received)  # made once connected
            with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{proxy.port}"):
                await backend.publish(Message(f"{prefix}.late", 0))
            await until(lambda: caplog.text.count("cannot reach") >= 4)
            proxy.refuse = False
            await until(lambda: backend.connected)
            await backend.publish(Message(f"{prefix}.late", 1))
            await received.wait(1)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    delays = [
        float(found.group(1))
        for line in warnings
        if (found := re.search(r"cannot reach 127\.0\.0\.1:\d+ \(.+\); retrying in (.+)s$", line))
    ]
    assert delays[:4] == [0.05, 0.1, 0.2, 0.2]  # one line per attempt, backing off to the cap
    assert "guest" not in caplog.text


async def test_a_wrong_passcode_is_retried_without_logging_it(stomp, caplog):
    backend = backend_for(stomp_pass="wrong-s3cret", **FAST_RETRIES)
    async with backend:
        await until(lambda: "Access refused" in caplog.text)
        assert not backend.connected
    assert "wrong-s3cret" not in caplog.text


async def test_a_cut_connection_resumes_within_five_seconds(stomp, prefix):
    received = Received()
    async with TcpProxy(STOMP_PORT) as proxy, backend_for(proxy.port) as backend:
        await backend.subscribe([f"{prefix}.tick"], received)
        await backend.publish(Message(f"{prefix}.tick", 0))
        await received.wait(1)
        await proxy.cut()
        resumed = await until(lambda: proxy.connections_made == 2 and backend.connected)
        await backend.publish(Message(f"{prefix}.tick", 1))  # subscription restored
        await received.wait(2)
    assert resumed < 5
    assert received.bodies == [0, 1]


async def test_every_message_is_consumed_despite_cut_connections(stomp, prefix, group):
    received = Received()
    consumer_settings = {"stomp_ack_mode": "client-individual"}
    async with (
        TcpProxy(STOMP_PORT) as proxy,
        backend_for(proxy.port, **consumer_settings) as consumer,
        backend_for(proxy.port) as publisher,
    ):
        await consumer.subscribe([f"{prefix}.n"], received, group=group)
        for i in range(300):
            if i % 100 == 50:
                await proxy.cut()  # both connections, mid-stream
            await publisher.publish(Message(f"{prefix}.n", i))
        await until(lambda: set(received.bodies) == set(range(300)), timeout=3 * TIMEOUT)
    assert proxy.connections_made >= 6
    # Duplicates come only from deliveries whose ACK was lost with a connection.
    assert len(received.messages) - 300 <= 3 * 100


async def test_a_slow_handler_does_not_cost_the_connection(stomp, prefix):
    received = Received()

    async def slow(message: Message) -> None:
        if message.body == "slow":
            await asyncio.sleep(1.0)  # the slow consumer being simulated
        await received(message)

    async with (
        TcpProxy(STOMP_PORT) as proxy,
        backend_for(proxy.port, stomp_heartbeat=200) as consumer,
        backend_for() as publisher,
    ):
        await consumer.subscribe([f"{prefix}.s"], slow)
        await publisher.publish(Message(f"{prefix}.s", "slow"))
        await publisher.publish(Message(f"{prefix}.s", "next"))
        await received.wait(2)
    assert received.bodies == ["slow", "next"]
    assert proxy.connections_made == 1


async def test_an_error_frame_is_a_clear_error_and_the_backend_recovers(stomp, prefix):
    backend = backend_for(stomp_destination_prefix="/foo/", **FAST_RETRIES)
    async with backend:
        with pytest.raises(BackendError, match=r"refused the subscription to /foo/.*not a valid"):
            await backend.subscribe([f"{prefix}.x"], Received())
        await until(lambda: backend.connected)
        # A refused SEND is tried again on a few connections, then reported.
        with pytest.raises(BackendError, match=r"/foo/.*is not a valid destination"):
            await backend.publish(Message(f"{prefix}.x", 1))
        await until(lambda: backend.connected)


class FakeBroker:
    """A tiny STOMP broker that can do what RabbitMQ will not: fall silent, match loosely.

    It answers CONNECT with CONNECTED offering ``heartbeat``, answers every
    ``receipt``, and on each SUBSCRIBE sends the MESSAGE frames of
    ``deliveries`` ((destination, body, extra headers)) whatever the pattern.
    It never sends heart-beats itself.
    """

    def __init__(
        self,
        heartbeat: str = "100,100",
        deliveries: Sequence[tuple[str, bytes, dict]] = (),
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.connections = 0
        self._tls = tls
        self.heartbeats = asyncio.Event()
        self._heartbeat = heartbeat
        self._deliveries = deliveries
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> FakeBroker:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        parser = FrameParser()
        while data := await reader.read(4096):
            parser.feed(data)
            if parser.heartbeats_received:
                self.heartbeats.set()
            for frame in parser.events():
                writer.write(b"".join(self._answer(frame)))

    def _answer(self, frame: Frame) -> Iterator[bytes]:
        if frame.command == "CONNECT":
            headers = {"version": "1.2", "heart-beat": self._heartbeat}
            yield encode_frame(Frame("CONNECTED", headers))
        if frame.command == "SUBSCRIBE":
            for n, (where, body, extra) in enumerate(self._deliveries):
                headers = {"subscription": frame.headers["id"], "message-id": f"fake-{n}"}
                headers |= {"destination": where, **extra}
                yield encode_frame(Frame("MESSAGE", headers, body))
        if "receipt" in frame.headers:
            yield encode_frame(Frame("RECEIPT", {"receipt-id": frame.headers["receipt"]}))


async def test_heartbeats_are_sent_and_a_silent_broker_is_replaced(caplog):
    async with FakeBroker(heartbeat="100,100") as broker:
        backend = backend_for(broker.port, stomp_heartbeat=100, **FAST_RETRIES)
        async with backend:
            assert backend.connected
            async with asyncio.timeout(TIMEOUT):
                await broker.heartbeats.wait()
            # Nothing arrives: after 2 x 100 ms the connection is dropped and made again.
            waited = await until(lambda: broker.connections >= 2)
    assert waited < 2
    assert "nothing received for" in caplog.text


async def test_a_broker_with_other_matching_rules_is_filtered_by_ours():
    deliveries = [
        ("/topic/a.b", b"1", {}),
        ("/topic/a.b.c", b"2", {}),  # no match for a.* under the AMQP rules
        ("/topic/a.x", b"3", {"timestamp": "1700000000500"}),  # milliseconds, as ActiveMQ
    ]
    received = Received()
    async with (
        FakeBroker(heartbeat="0,0", deliveries=deliveries) as broker,
        backend_for(broker.port, stomp_heartbeat=0) as backend,
    ):
        await backend.subscribe(["a.*"], received)
        await received.wait(2)
    assert [(m.topic, m.body) for m in received.messages] == [("a.b", 1), ("a.x", 3)]
    assert received.messages[0].id == "fake-0"  # no amqp-message-id: the broker's id
    assert received.messages[1].timestamp_s == 1700000000.5


def tls_server(key: str, crt: str) -> ssl.SSLContext:
    """A server context that also demands a client certificate signed by ``crt``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(crt)
    return context


async def test_tls_with_a_client_certificate(tls_files, monkeypatch):
    key, crt = tls_files
    monkeypatch.setenv("SSL_CERT_FILE", crt)  # the "system" CA store now trusts the broker
    received = Received()
    deliveries = [("/topic/secure.x", b"1", {})]
    async with (
        FakeBroker("0,0", deliveries, tls=tls_server(key, crt)) as broker,
        backend_for(broker.port, stomp_ssl_key=key, stomp_ssl_crt=crt) as backend,
    ):
        await backend.subscribe(["secure.*"], received)
        await received.wait(1)
    assert received.bodies == [1]


async def test_tls_verifies_the_broker_certificate(tls_files, caplog):
    key, crt = tls_files  # not trusted by the system CA store
    async with FakeBroker("0,0", tls=tls_server(key, crt)) as broker:
        backend = backend_for(broker.port, stomp_ssl_key=key, stomp_ssl_crt=crt, **FAST_RETRIES)
        async with backend:
            assert not backend.connected
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text


async def test_closing_while_the_broker_is_down_leaves_nothing_running():
    with socket_closed_port() as dead:
        backend = backend_for(dead, **FAST_RETRIES)
        before = asyncio.all_tasks()
        await backend.connect()
        await backend.subscribe(["a.b"], Received())
        await backend.close()
    assert asyncio.all_tasks() == before
    assert not backend.connected


# Persistence: RabbitMQ keeps a STOMP message across a restart only when it is persistent.


@pytest.mark.parametrize(
    ("settings", "headers", "mode"),
    [
        ({}, {}, aio_pika.DeliveryMode.PERSISTENT),
        ({"stomp_persistent": "false"}, {}, aio_pika.DeliveryMode.NOT_PERSISTENT),
        ({}, {"persistent": "false"}, aio_pika.DeliveryMode.NOT_PERSISTENT),
        ({"stomp_persistent": "false"}, {"persistent": "true"}, aio_pika.DeliveryMode.PERSISTENT),
    ],
)
async def test_publishes_are_persistent_unless_configured_or_asked_otherwise(
    raw, prefix, settings, headers, mode
):
    queue = await raw.declare_queue(exclusive=True)
    await queue.bind("amq.topic", f"{prefix}.#")
    async with backend_for(**settings) as backend:
        await backend.publish(Message(f"{prefix}.event", 1, headers={**headers, "app": "x"}))
    async with asyncio.timeout(TIMEOUT):
        while (incoming := await queue.get(no_ack=True, fail=False)) is None:
            await asyncio.sleep(0.01)
    assert incoming.delivery_mode == mode
    assert incoming.headers == {"app": "x"}  # the persistent header is the frame's, not a user one


async def test_a_persistent_header_that_is_not_true_or_false_is_refused() -> None:
    backend = backend_for()
    with pytest.raises(MessageError, match="write persistent=true or persistent=false"):
        await backend.publish(Message("t", 1, headers={"persistent": "yes"}))


async def test_moksha_send_accepts_a_persistent_header(raw, prefix, tmp_path):
    queue = await raw.declare_queue(exclusive=True)
    await queue.bind("amq.topic", f"{prefix}.#")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOKSHA_")}
    env |= {
        "MOKSHA_STOMP_URI": f"127.0.0.1:{STOMP_PORT}",
        "MOKSHA_STOMP_USER": "guest",
        "MOKSHA_STOMP_PASS": "guest",
        "MOKSHA_STOMP_PERSISTENT": "false",
    }
    command = [sys.executable, "-m", "moksha", "send", f"{prefix}.cli", "1"]
    command += ["-H", "persistent=true"]
    result = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    async with asyncio.timeout(TIMEOUT):
        while (incoming := await queue.get(no_ack=True, fail=False)) is None:
            await asyncio.sleep(0.01)
    assert incoming.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert result.stdout.strip() == f"sent {incoming.message_id} to {prefix}.cli"
