"""Fixtures every test directory may use: a real headless Chromium for browser tests."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import aio_pika
import pytest

from moksha.hub.backends.amqp_registry import Registry, registry_queue
from support import NATS_STREAM, REDIS_PREFIX, RUN, RUN_QUEUE_PREFIX

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def require_chromium() -> None:
    """Skip without Chromium — but never in CI (``CI=true``), where the browser tests must run."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing (apt-get install chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must run the browser tests")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright; one per test module."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session", autouse=True)
def broker_queues_cleaned() -> Iterator[None]:
    """Delete, once the session ends, the durable queues it created on the local RabbitMQ.

    Moksha records every durable queue it creates in its queue registry; the
    queues of this session are those named with its id (:data:`support.RUN`),
    so another developer's run on the same broker keeps its own.
    """
    yield
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        return  # no broker, nothing was created
    asyncio.run(_delete_queues_of_this_run())


@pytest.fixture(scope="session", autouse=True)
def nats_stream_deleted() -> Iterator[None]:
    """Delete this session's JetStream stream (``support.NATS_STREAM``), and any of an
    earlier session that died before deleting its own (an hour old: not a run going on).

    Each session's stream takes subjects of its own (``support.SPACE``), so sessions
    running at once on one server do not collide."""
    asyncio.run(_delete_nats_test_streams(stale_only=True))
    yield
    asyncio.run(_delete_nats_test_streams(stale_only=False))


async def _delete_nats_test_streams(*, stale_only: bool) -> None:
    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=1).close()
    except OSError:
        return  # no server, nothing was created
    import datetime

    import nats

    nc = await nats.connect("nats://127.0.0.1:4222")
    try:
        js = nc.jetstream()
        now = datetime.datetime.now(datetime.UTC)
        for info in await js.streams_info():
            name = info.config.name or ""
            old = info.created is not None and now - info.created > datetime.timedelta(hours=1)
            if name == NATS_STREAM or (stale_only and name.startswith("moksha-test-") and old):
                await js.delete_stream(name)
    finally:
        await nc.close()


@pytest.fixture(scope="session", autouse=True)
def redis_keys_cleaned() -> Iterator[None]:
    """Delete, once the session ends, the Redis keys its bus suites made (their prefix has RUN)."""
    yield
    import redis

    try:
        client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
        keys = list(client.scan_iter(match=f"{REDIS_PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    except redis.ConnectionError:
        return  # no server, nothing was made


async def _delete_queues_of_this_run() -> None:
    broker = "amqp://guest:guest@127.0.0.1:5672/"
    async with Registry.open(broker, "moksha") as registry:
        for name in [name for name in registry.records if RUN in name]:
            await registry.delete(name)
    async with Registry.open(broker, RUN_QUEUE_PREFIX) as registry:
        for name in list(registry.records):
            await registry.delete(name)
    async with await aio_pika.connect(broker) as connection:
        channel = await connection.channel()
        await channel.queue_delete(registry_queue(RUN_QUEUE_PREFIX))
