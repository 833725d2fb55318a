"""The AMQP backend against the real RabbitMQ on 127.0.0.1:5672.

Covers what the contract suite does not: the broker address, the wire format
seen by plain aio-pika clients, consumer groups (shared durable queues,
exclusive fan-out queues), requeue on failure, deliveries settled in
batches (order kept, each acked or nacked once, also when unsubscribing or
cut mid-batch), a broker down at start, connections cut mid-stream
(at-least-once), and heartbeats while a handler blocks in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import UTC, datetime

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage
from amqp_support import backend_for

from moksha.config import load_config
from moksha.errors import BackendError, BackendUnavailable, ConfigError
from moksha.hub import MokshaHub
from moksha.hub.backends.amqp_options import broker_address, parse_broker, to_amqp
from moksha.message import Message
from support import TIMEOUT, Received, until
from tcp_proxy import TcpProxy


def test_an_amqp_url_passes_through_with_the_configured_heartbeat() -> None:
    address = parse_broker("amqp://u:pw@rabbit.example:5673/vh?name=hub", {"heartbeat": "15"})
    assert address.url.host == "rabbit.example"
    assert address.url.port == 5673
    assert address.url.path == "/vh"
    assert address.url.query == {"name": "hub", "heartbeat": "15"}


def test_an_option_in_the_url_wins_over_the_config() -> None:
    address = parse_broker("amqp://h/?heartbeat=5", {"heartbeat": "60"})
    assert address.url.query["heartbeat"] == "5"


def test_amqps_gets_its_default_port() -> None:
    assert parse_broker("amqps://u:pw@h/").url.port == 5671
    assert parse_broker("amqp://h").url.port == 5672


def test_the_original_slash_form_becomes_a_url() -> None:
    url = parse_broker("guest/p:w@broker.example:5673").url
    assert (url.scheme, url.user, url.password) == ("amqp", "guest", "p:w")
    assert (url.host, url.port, url.path) == ("broker.example", 5673, "/")


def test_a_bare_host_logs_in_with_the_default_account() -> None:
    url = parse_broker("localhost").url
    # No user in the URL: aiormq logs in as guest/guest, RabbitMQ's default account.
    assert (url.user, url.password, url.host, url.port) == (None, None, "localhost", 5672)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("http://h/", "scheme 'http'"),
        ("amqp://", "no host"),
        ("amqp://h:x/", "cannot be parsed"),
        ("user/pw@h:99999", "port"),
        ("not a broker", "matches neither"),
    ],
)
def test_a_bad_address_is_refused_with_the_reason(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_broker(value)


def test_a_bad_address_in_the_config_names_the_key_and_hides_the_password() -> None:
    config = load_config(overrides={"amqp_broker": "ftp://u:s3cret@h/"}, environ={}, search=False)
    with pytest.raises(ConfigError, match=r"amqp_broker \(from code\)") as info:
        broker_address(config)
    assert "s3cret" not in str(info.value)


def test_the_address_never_shows_its_password() -> None:
    for value in ("amqp://guest:s3cret@h:5672/", "guest/s3cret@h"):
        address = parse_broker(value)
        assert "s3cret" not in str(address) + repr(address)
        assert "guest:***@h:5672" in str(address)
        assert address.scrub("login failed with s3cret") == "login failed with ***"


def test_config_keys_become_connection_options() -> None:
    config = load_config(
        overrides={"amqp_broker": "h", "amqp_heartbeat": 7, "moksha.reconnect_delay": 0.25},
        environ={},
        search=False,
    )
    assert broker_address(config).url.query == {"heartbeat": "7", "reconnect_interval": "0.25"}


def test_a_message_becomes_a_persistent_amqp_message_with_its_properties() -> None:
    message = Message("a.b", {"n": 1}, headers={"h": "v"}, timestamp=1714564800.75)
    outgoing = to_amqp(message)
    assert outgoing.body == b'{"n":1}'
    assert outgoing.content_type == "application/json"
    assert outgoing.message_id == message.id
    assert outgoing.timestamp == datetime(2024, 5, 1, 12, 0, 0, 750000, tzinfo=UTC)
    assert outgoing.headers == {"h": "v"}
    assert outgoing.delivery_mode == aio_pika.DeliveryMode.PERSISTENT


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (Message("t", "text"), "application/json"),
        (Message("t", payload=b'{"already": "encoded"}'), "application/json"),
        (Message("t", payload=b"plain text"), "application/octet-stream"),
        (Message("t", payload=b"\x00\xff"), "application/octet-stream"),
    ],
)
def test_the_content_type_says_whether_the_payload_is_json(message, expected) -> None:
    assert to_amqp(message).content_type == expected


# The wire format, both ways, with a plain aio-pika client.


async def test_a_foreign_publish_reaches_a_subscriber(raw, prefix):
    async with backend_for() as backend:
        received = Received()
        await backend.subscribe([f"{prefix}.#"], received)
        exchange = await raw.get_exchange("amq.topic")
        sent_at = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
        await exchange.publish(
            aio_pika.Message(
                b'{"n": 1, "text": "h\xc3\xa9llo"}',
                content_type="application/json",
                headers={"h": "v", "count": 5},
                message_id="foreign-1",
                timestamp=sent_at,
            ),
            routing_key=f"{prefix}.a.b",
        )
        # Foreign publishers may leave out the id and the timestamp.
        await exchange.publish(aio_pika.Message(b"[1, 2]"), routing_key=f"{prefix}.bare")
        first, bare = await received.wait(2)
    assert first.topic == f"{prefix}.a.b"
    assert first.body == {"n": 1, "text": "héllo"}
    assert first.headers == {"h": "v", "count": "5"}
    assert first.id == "foreign-1"
    assert first.timestamp == sent_at
    assert bare.body == [1, 2]
    assert bare.id
    assert abs(bare.timestamp_s - time.time()) < 5


async def test_a_publish_reaches_a_foreign_queue(raw, prefix):
    queue = await raw.declare_queue(exclusive=True)
    await queue.bind("amq.topic", routing_key=f"{prefix}.#")
    arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    await queue.consume(arrived.put, no_ack=True)
    sent = Message(f"{prefix}.event", {"n": 1}, headers={"h": "v"})
    async with backend_for() as backend:
        await backend.publish(sent)
        await backend.publish(Message(f"{prefix}.raw", payload=b"\x00\xff not json"))
    async with asyncio.timeout(TIMEOUT):
        json_message, raw_message = await arrived.get(), await arrived.get()
    assert json_message.routing_key == sent.topic
    assert json_message.body == b'{"n":1}'
    assert json_message.content_type == "application/json"
    assert json_message.message_id == sent.id
    assert json_message.timestamp == sent.timestamp.replace(microsecond=0)
    # The user's header, among fedora-messaging's (amqp_fedora_headers, on by default).
    assert json_message.headers is not None and json_message.headers["h"] == "v"
    assert json_message.headers["fedora_messaging_schema"] == "base.message"
    assert json_message.content_encoding == "utf-8"
    assert json_message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert raw_message.body == b"\x00\xff not json"
    assert raw_message.content_type == "application/octet-stream"


async def test_without_fedora_headers_the_users_headers_travel_alone(raw, prefix):
    queue = await raw.declare_queue(exclusive=True)
    await queue.bind("amq.topic", routing_key=f"{prefix}.#")
    arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    await queue.consume(arrived.put, no_ack=True)
    async with backend_for(amqp_fedora_headers=False) as backend:
        await backend.publish(Message(f"{prefix}.event", {"n": 1}, headers={"h": "v"}))
    async with asyncio.timeout(TIMEOUT):
        delivered = await arrived.get()
    assert delivered.headers == {"h": "v"}
    assert delivered.content_encoding is None


async def test_the_topic_prefix_goes_in_front_of_the_routing_key(raw, prefix):
    queue = await raw.declare_queue(exclusive=True)
    await queue.bind("amq.topic", routing_key=f"org.example.prod.{prefix}.#")
    arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    await queue.consume(arrived.put, no_ack=True)
    async with backend_for(amqp_topic_prefix="org.example.prod") as backend:
        await backend.publish(Message(f"{prefix}.event", {"n": 1}))
    async with asyncio.timeout(TIMEOUT):
        delivered = await arrived.get()
    assert delivered.routing_key == f"org.example.prod.{prefix}.event"


async def test_another_exchange_is_declared_as_a_durable_topic_exchange(raw, prefix):
    name = f"{prefix}.exchange"
    try:
        async with backend_for(amqp_exchange=name) as backend:
            received = Received()
            await backend.subscribe([f"{prefix}.*"], received)
            await backend.publish(Message(f"{prefix}.one", 1))
            [message] = await received.wait(1)
        assert message.body == 1
        # Declaring it again as a durable topic exchange is accepted: same properties.
        await raw.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
    finally:
        await raw.exchange_delete(name)


# Consumer groups.


async def test_a_group_shares_the_work_between_two_hubs(prefix, rabbit, durable_queues):
    group = prefix.replace(".", "-")
    durable_queues.append(f"moksha.{group}")
    handled: dict[str, list[int]] = {"one": [], "two": []}

    def worker(name: str):
        async def handle(message: Message) -> None:
            await asyncio.sleep(0.001)  # a little work, so that the broker spreads the load
            handled[name].append(message.body)

        return handle

    async with backend_for(amqp_prefetch=5) as one, backend_for(amqp_prefetch=5) as two:
        await one.subscribe([f"{prefix}.#"], worker("one"), group=group)
        await two.subscribe([f"{prefix}.#"], worker("two"), group=group)
        await asyncio.gather(*(one.publish(Message(f"{prefix}.job", i)) for i in range(100)))
        await until(lambda: len(handled["one"]) + len(handled["two"]) >= 100)
    assert sorted(handled["one"] + handled["two"]) == list(range(100))
    assert handled["one"] and handled["two"]


async def test_a_group_queue_keeps_messages_while_nobody_consumes(prefix, rabbit, durable_queues):
    group = prefix.replace(".", "-")
    durable_queues.append(f"moksha.{group}")
    async with backend_for() as backend:
        subscription = await backend.subscribe([f"{prefix}.kept"], Received(), group=group)
        await subscription.cancel()
    async with backend_for() as backend:
        for i in range(10):
            await backend.publish(Message(f"{prefix}.kept", i))
    async with backend_for() as backend:
        received = Received()
        await backend.subscribe([f"{prefix}.kept"], received, group=group)
        assert [m.body for m in await received.wait(10)] == list(range(10))


async def test_without_durable_queues_every_subscription_gets_everything(raw, prefix):
    group = prefix.replace(".", "-")
    async with backend_for(amqp_durable_queues=False) as backend:
        first, second = Received(), Received()
        await backend.subscribe([f"{prefix}.x"], first, group=group)
        await backend.subscribe([f"{prefix}.x"], second, group=group)
        for i in range(5):
            await backend.publish(Message(f"{prefix}.x", i))
        assert [m.body for m in await first.wait(5)] == list(range(5))
        assert [m.body for m in await second.wait(5)] == list(range(5))
    with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
        await raw.declare_queue(f"moksha.{group}", passive=True)  # no group queue was made


async def test_a_failed_delivery_is_requeued_and_handled_again(rabbit, prefix):
    attempts: list[Message] = []
    handled = Received()

    async def flaky(message: Message) -> None:
        attempts.append(message)
        if len(attempts) == 1:
            raise RuntimeError("not now")
        await handled(message)

    async with backend_for() as backend:
        sent = Message(f"{prefix}.flaky", "once")
        await backend.subscribe([f"{prefix}.flaky"], flaky)
        await backend.publish(sent)
        [message] = await handled.wait(1)
    assert [m.id for m in attempts] == [sent.id, sent.id]
    assert message.body == "once"


async def test_a_queue_the_broker_refuses_raises_a_backend_error(raw, prefix, durable_queues):
    group = prefix.replace(".", "-")
    durable_queues.append(f"moksha.{group}")
    await raw.declare_queue(f"moksha.{group}", durable=True, arguments={"x-max-length": 1})
    async with backend_for() as backend:
        with pytest.raises(BackendError, match=f"refused the subscription to .*{prefix}"):
            await backend.subscribe([f"{prefix}.x"], Received(), group=group)
        received = Received()  # the backend goes on working
        await backend.subscribe([f"{prefix}.y"], received)
        await backend.publish(Message(f"{prefix}.y", "still here"))
        await received.wait(1)


# A broker that is down, connections that are cut.


def retry_delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    return [float(d) for line in lines for d in re.findall(r"retrying in ([\d.]+)s", line)]


async def test_a_broker_down_at_start_is_retried_with_backoff(rabbit, prefix, caplog):
    caplog.set_level(logging.WARNING, logger="moksha.hub.backends.amqp")
    async with TcpProxy(5672) as proxy:
        proxy.refuse = True
        broker = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        settings = {"moksha.reconnect_delay": 0.05, "moksha.reconnect_max_delay": 0.2}
        async with backend_for(broker, **settings) as backend:
            assert not backend.connected
            received = Received()
            await backend.subscribe([f"{prefix}.late"], received)  # applied once connected
            await until(lambda: len(retry_delays(caplog)) >= 4)
            proxy.refuse = False
            await until(lambda: backend.connected)
            await backend.publish(Message(f"{prefix}.late", "made it"))
            [message] = await received.wait(1)
    assert message.body == "made it"
    delays = retry_delays(caplog)
    assert delays[:4] == [0.05, 0.1, 0.2, 0.2]
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert warning.startswith(f"amqp: cannot reach amqp://guest:***@127.0.0.1:{proxy.port}/ (")
    assert "guest:guest" not in caplog.text


async def test_a_hub_says_connected_only_once_it_is(rabbit, caplog):
    caplog.set_level(logging.INFO)
    async with TcpProxy(5672) as proxy:
        proxy.refuse = True
        broker = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        config = {"amqp_broker": broker, "moksha.reconnect_delay": 0.05}
        async with MokshaHub(config):
            pass
    lines = [r.getMessage() for r in caplog.records if r.name == "moksha.hub"]
    assert "backend amqp is not connected yet; it keeps trying in the background" in lines
    assert "backend amqp connected" not in lines
    [record] = [r for r in caplog.records if "not connected yet" in r.getMessage()]
    assert record.backend == "amqp"  # a structured field, for JSON logs


async def test_no_password_reaches_the_log(rabbit, caplog):
    caplog.set_level(logging.DEBUG)
    async with TcpProxy(5672) as proxy:
        proxy.refuse = True
        async with backend_for(f"amqp://moksha:s3cret-pw@127.0.0.1:{proxy.port}/") as backend:
            assert not backend.connected
            assert "s3cret-pw" not in repr(backend.address) + str(backend.address)
    assert "cannot reach amqp://moksha:***@" in caplog.text
    assert "s3cret-pw" not in caplog.text


async def test_a_publish_while_down_fails_quickly_with_a_readable_error(rabbit, prefix):
    async with TcpProxy(5672) as proxy:
        proxy.refuse = True
        broker = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        async with backend_for(broker, **{"moksha.publish_timeout": 0.5}) as backend:
            start = time.monotonic()
            with pytest.raises(BackendUnavailable) as info:
                await backend.publish(Message(f"{prefix}.lost", 1))
            assert time.monotonic() - start < 2
    text = str(info.value)
    assert f"amqp://guest:***@127.0.0.1:{proxy.port}/" in text
    assert "within 0.5s" in text and "Check that RabbitMQ is running" in text


async def test_closing_during_a_connection_attempt_leaves_nothing_running(prefix):
    accepted = asyncio.Event()
    silent: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)  # a broker that accepts and then says nothing
        accepted.set()

    before = asyncio.all_tasks()
    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        backend = backend_for(f"amqp://guest:guest@127.0.0.1:{port}/")
        connecting = asyncio.create_task(backend.connect())
        async with asyncio.timeout(TIMEOUT):
            await accepted.wait()
        await backend.subscribe([f"{prefix}.x"], Received())
        await backend.close()  # cancels the attempt in progress
        await connecting
        for writer in silent:
            writer.close()
    await until(lambda: asyncio.all_tasks() <= before)
    assert not backend.connected


async def test_an_exclusive_subscription_survives_a_cut(rabbit, prefix):
    async with TcpProxy(5672) as proxy:
        broker = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        async with backend_for(broker, **{"moksha.reconnect_delay": 0.1}) as backend:
            received = Received()
            await backend.subscribe([f"{prefix}.*"], received)
            await proxy.cut()
            await until(lambda: proxy.connections_made == 2 and backend.connected)
            await backend.publish(Message(f"{prefix}.after", "cut"))
            [message] = await received.wait(1)
    assert message.body == "cut"
    assert proxy.connections_made == 2


async def test_a_long_outage_is_retried_with_backoff(rabbit, prefix, caplog):
    caplog.set_level(logging.INFO)

    def failed_attempts() -> int:
        return len(retry_delays(caplog))

    async with TcpProxy(5672) as proxy:
        broker = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        settings = {"moksha.reconnect_delay": 0.05, "moksha.reconnect_max_delay": 0.2}
        async with backend_for(broker, **settings) as backend:
            received = Received()
            await backend.subscribe([f"{prefix}.back"], received)
            proxy.refuse = True
            await proxy.cut()
            # Waits of 0.05, 0.1, 0.2, 0.2, 0.2 before the sixth attempt: >= 0.75 s in all,
            # where a fixed interval would have taken 0.25 s.
            took = await until(lambda: failed_attempts() >= 6)
            proxy.refuse = False
            await until(lambda: backend.connected)
            await backend.publish(Message(f"{prefix}.back", "again"))
            await received.wait(1)
    assert took >= 0.6
    # One line per attempt, Moksha's, with the address and the next delay; none of
    # aiormq's or aio-pika's own lines about the same attempts.
    assert not [r for r in caplog.records if r.name.startswith(("aio_pika", "aiormq"))]
    attempts = [r.getMessage() for r in caplog.records if "cannot reach" in r.getMessage()]
    assert all(f"amqp://guest:***@127.0.0.1:{proxy.port}/" in line for line in attempts)
    delays = retry_delays(caplog)
    assert delays == sorted(delays[:-1]) + delays[-1:] or max(delays) <= 0.2
    assert max(delays) == 0.2


async def test_every_message_is_consumed_despite_cut_connections(rabbit, prefix, durable_queues):
    """At-least-once: 300 confirmed publishes, 3 cuts of every connection, none lost.

    Duplicate bound: a cut can cost at most the deliveries the subscriber had
    received but not yet acked (``prefetch`` = ``amqp_prefetch``) plus the
    publishes in flight whose confirms were lost (``window``, sent again after
    reconnecting), so duplicates <= 3 * (prefetch + window) = 90.
    """
    total, window, prefetch, cuts_at = 300, 10, 20, (75, 150, 225)
    group = prefix.replace(".", "-")
    durable_queues.append(f"moksha.{group}")
    consumed: list[int] = []
    reconnect_times: list[float] = []

    async def record(message: Message) -> None:
        await asyncio.sleep(0)  # a tiny bit of work
        consumed.append(message.body)

    async with TcpProxy(5672) as proxy:
        settings = {
            "amqp_prefetch": prefetch,
            "moksha.reconnect_delay": 0.1,
            "moksha.publish_timeout": 15,
        }
        broker = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        async with backend_for(broker, **settings) as backend:
            await backend.subscribe([f"{prefix}.n"], record, group=group)

            async def cut() -> None:
                before = proxy.connections_made
                await proxy.cut()
                start = time.monotonic()
                # A new connection through the proxy, not a glimpse of `connected`
                # turning False: the reconnect may beat any poll.
                await until(lambda: proxy.connections_made > before and backend.connected, 10)
                reconnect_times.append(time.monotonic() - start)

            cutters = []
            for first in range(0, total, window):
                if any(first <= n < first + window for n in cuts_at):  # cut mid-window
                    cutters.append(asyncio.create_task(cut()))
                numbers = range(first, first + window)
                await asyncio.gather(*(backend.publish(Message(f"{prefix}.n", n)) for n in numbers))
            await asyncio.gather(*cutters)
            await until(lambda: set(consumed) >= set(range(total)), timeout=20)
    duplicates = len(consumed) - len(set(consumed))
    print(f"consumed {len(consumed)}, duplicates {duplicates}, reconnects {reconnect_times}")
    assert sorted(set(consumed)) == list(range(total))
    assert duplicates <= len(cuts_at) * (prefetch + window)
    assert len(reconnect_times) == len(cuts_at)
    assert max(reconnect_times) < 5
    assert proxy.connections_made >= 1 + len(cuts_at)


async def test_a_handler_blocking_in_a_thread_keeps_the_connection(rabbit, prefix):
    handled = Received()

    async def slow(message: Message) -> None:
        if message.body == "slow":
            await asyncio.to_thread(time.sleep, 3)  # three heartbeat intervals
        await handled(message)

    async with TcpProxy(5672) as proxy:
        broker = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        async with backend_for(broker, amqp_heartbeat=1) as backend:
            await backend.subscribe([f"{prefix}.slow"], slow)
            await backend.publish(Message(f"{prefix}.slow", "slow"))
            await handled.wait(1, timeout=10)
            assert backend.connected
            await backend.publish(Message(f"{prefix}.slow", "quick"))
            await handled.wait(2)
    assert [m.body for m in handled.messages] == ["slow", "quick"]  # nothing redelivered
    assert proxy.connections_made == 1
