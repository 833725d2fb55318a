"""Helpers shared by the tests: wait for deliveries without sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from moksha.hub.api import Consumer

TIMEOUT = 5.0

RUN = uuid.uuid4().hex[:8]
"""This test session's id: in the names of the broker queues it creates, so its cleanup
deletes those and never another developer's (see ``tests/conftest.py``)."""
RUN_QUEUE_PREFIX = f"test.{RUN}"
"""The ``amqp_queue_prefix`` of the suites that run on every backend."""
SPACE = f"t{RUN}"
"""The first word of the topics the suites run on every bus: the NATS test stream takes
``<SPACE>.>``, which no other session's stream overlaps (NATS refuses overlapping ones)."""


class Inbox:
    """Collects items from any thread; ``wait(n)`` blocks until n arrived (bounded)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = threading.Condition()

    def __call__(self, item: Any) -> None:
        with self._changed:
            self.items.append(item)
            self._changed.notify_all()

    def wait(self, count: int = 1, timeout: float = TIMEOUT) -> list[Any]:
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.items) >= count, timeout)
        assert arrived, f"expected {count} items within {timeout}s, got {len(self.items)}"
        return list(self.items)


async def until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> float:
    """Poll ``condition`` (bounded); return the seconds it took to become true."""

    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
    return time.monotonic() - start


class Received:
    """A backend handler that records messages and lets a test await them (no sleeps)."""

    def __init__(self) -> None:

        self.messages: list[Any] = []
        self._changed = asyncio.Event()

    async def __call__(self, message: Any) -> None:
        self.messages.append(message)
        self._changed.set()

    @property
    def bodies(self) -> list[Any]:
        return [m.body for m in self.messages]

    async def wait(self, count: int, timeout: float = TIMEOUT) -> list[Any]:
        """Wait until ``count`` messages arrived; return them all."""
        await self.wait_until(lambda: len(self.messages) >= count, timeout)
        return self.messages

    async def wait_until(self, arrived: Callable[[], bool], timeout: float = TIMEOUT) -> None:

        async with asyncio.timeout(timeout):
            while not arrived():
                self._changed.clear()
                await self._changed.wait()

    async def resend_until_one(self, send: Callable[[], Any]) -> Any:
        """Send until the first message arrives (a remote ZeroMQ link comes up asynchronously)."""

        async with asyncio.timeout(TIMEOUT):
            while not self.messages:
                await send()
                with contextlib.suppress(TimeoutError):
                    await self.wait(1, timeout=0.05)
        return self.messages[0]


def consumer_of(topic, inbox: Inbox, *, field: str = "body", **attrs):
    """A consumer class on ``topic`` that puts ``message[field]`` in ``inbox``."""

    def consume(self, message):
        inbox(message[field] if field else message)

    return type("TestConsumer", (Consumer,), {"topic": topic, "consume": consume, **attrs})


def require_service(name: str, port: int, host: str = "127.0.0.1") -> None:
    """Skip the test when a broker is not listening — but never in CI, where it must run.

    CI (``CI=true``) turns a missing broker into a failure, so a broken
    service cannot hide behind a skip.
    """

    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError as exc:
        message = f"{name} is not reachable on {host}:{port} ({exc})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must run every broker test (see .ci/run)")
    pytest.skip(f"{message}; start it to run this test")


def free_endpoint() -> str:
    """A tcp:// endpoint on 127.0.0.1 with a port nobody listens on right now."""

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


# The config of each backend, for suites that run on every one of them.
def amqp() -> dict[str, Any]:
    require_service("RabbitMQ", 5672)
    return {
        "moksha.backends": "amqp",
        "amqp_broker": "amqp://guest:guest@127.0.0.1:5672/",
        "amqp_queue_prefix": RUN_QUEUE_PREFIX,  # its queues are deleted at the end of the session
    }


def stomp() -> dict[str, Any]:
    require_service("RabbitMQ STOMP", 61613)
    return {
        "moksha.backends": "stomp",
        "stomp_uri": "127.0.0.1:61613",
        "stomp_user": "guest",
        "stomp_pass": "guest",
    }


def zeromq() -> dict[str, Any]:
    endpoint = free_endpoint()  # this test's PUB socket
    return {
        "moksha.backends": "zeromq",
        "zmq_enabled": True,
        "zmq_publish_endpoints": endpoint,
        "zmq_subscribe_endpoints": endpoint,
        # The whole contract (ids, headers, AMQP patterns) needs both; the
        # original's wire (their defaults) has tests of its own.
        "zmq_metadata_frame": True,
        "zmq_strict": True,
    }


def mqtt() -> dict[str, Any]:
    require_service("Mosquitto", 1883)
    return {
        "moksha.backends": "mqtt",
        "mqtt_url": "mqtt://127.0.0.1:1883",
        "mqtt_node": f"test-{RUN}",
        "mqtt_session_expiry": 300,  # what a test leaves goes away on its own
    }


NATS_STREAM = f"moksha-test-{RUN}"
"""The JetStream stream of this test session (deleted at its end, see ``tests/conftest.py``)."""


def nats() -> dict[str, Any]:
    require_service("NATS", 4222)
    return {
        "moksha.backends": "nats",
        "nats_url": "nats://127.0.0.1:4222",
        "nats_stream": NATS_STREAM,
        # The topics of the suites run on every backend, and of tests/hub/backends/test_nats.py.
        "nats_stream_subjects": f"{SPACE}.>",
    }


def redis_bus() -> dict[str, Any]:
    require_service("Redis", 6379)
    return {
        "moksha.backends": "redis",
        "redis_bus_url": "redis://127.0.0.1:6379/0",
        "redis_bus_prefix": REDIS_PREFIX,  # its keys are deleted at the end of the session
    }


def amqp1() -> dict[str, Any]:
    require_service("RabbitMQ (AMQP 1.0 plugin)", 5672)
    return {"moksha.backends": "amqp1", "amqp1_url": "amqp://guest:guest@127.0.0.1:5672"}


@contextlib.asynccontextmanager
async def amqp1_source(pattern: str) -> Any:
    """A queue bound to ``amq.topic`` with ``pattern``, as ``/amq/queue/<name>`` for a plain
    AMQP 1.0 receiver; deleted afterwards (the plugin's ``/topic/`` sources leak theirs)."""
    import aio_pika

    name = f"test.{RUN}.amqp1.{uuid.uuid4().hex[:12]}"
    async with await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/") as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, arguments={"x-expires": 60_000})
        await queue.bind("amq.topic", pattern)
        try:
            yield f"/amq/queue/{name}"
        finally:
            await channel.queue_delete(name)


REDIS_PREFIX = f"test.{RUN}:"
"""The ``redis_bus_prefix`` of the suites that run on every backend."""


BACKENDS: dict[str, Callable[[], dict[str, Any]]] = {
    "memory": lambda: {"moksha.backends": "memory"},
    "amqp": amqp,
    "stomp": stomp,
    "zeromq": zeromq,
    "mqtt": mqtt,
    "nats": nats,
    # The default: no JetStream stream, so core NATS alone (queue groups, no acks).
    "nats-core": lambda: {**nats(), "nats_stream_subjects": ""},
    "redis": redis_bus,
    "amqp1": amqp1,
}
