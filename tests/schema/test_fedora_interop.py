"""Moksha on Fedora's bus: the real fedora-messaging library and RabbitMQ, both ways."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import aio_pika
import pytest
import websockets
from fedora_peer import conf_text
from schemas_support import HOTNESS_BODY, BuildDone, build_body
from site_support import PAGE_TIMEOUT_MS, Site

from moksha.hub import CentralMokshaHub, MokshaHub
from moksha.hub.api import Consumer
from moksha.schema import SchemaMessage
from support import RUN, TIMEOUT, amqp, until

if TYPE_CHECKING:
    from playwright.sync_api import Browser

PEER = Path(__file__).with_name("fedora_peer.py")
BROKER = "amqp://guest:guest@127.0.0.1:5672/"
PEER_TIMEOUT = 60  # the peer starts a Twisted reactor: seconds, not milliseconds


@pytest.fixture
def topic() -> str:
    return f"test.{RUN}.i12.fedora.{uuid4().hex[:8]}"


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "fedora-messaging.toml"
    path.write_text(conf_text())
    return path


def peer(*args: str) -> subprocess.Popen[str]:
    here = str(PEER.parent)
    return subprocess.Popen(
        [sys.executable, str(PEER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=here,
        env={"PYTHONPATH": here, "PATH": "/usr/bin:/bin"},
    )


def finished(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=PEER_TIMEOUT)
    assert process.returncode == 0, err[-3000:]
    return out


class Collecting(Consumer):
    topic = "test.nothing"
    seen: list[Any] = []

    async def consume(self, message: Any) -> None:
        self.seen.append(message)


async def test_a_fedora_messaging_publisher_reaches_a_moksha_consumer_and_a_browser(
    topic: str, conf: Path
) -> None:
    amqp()  # RabbitMQ must run (skips locally without it, fails under CI)
    consumer = type("FedoraReader", (Collecting,), {"topic": f"{topic}.#", "seen": []})
    settings = {
        **amqp(),
        "amqp_durable_queues": False,
        "moksha.livesocket.backend": "websocket",
        "moksha.livesocket.websocket.port": 0,
    }
    async with CentralMokshaHub(settings, [consumer], []) as hub:
        assert hub.livesocket_url is not None
        url = hub.livesocket_url.replace("http://", "ws://") + "/livesocket/ws"
        async with websockets.connect(url) as browser:
            await browser.send(json.dumps({"topic": "__topic_subscribe__", "body": f"{topic}.#"}))
            await until(
                lambda: hub.livesocket is not None and hub.livesocket.stats()["subscriptions"] == 1
            )
            sent = json.loads(await asyncio.to_thread(finished, peer("publish", str(conf), topic)))
            await until(lambda: len(consumer.seen) == 2, timeout=TIMEOUT * 2)
            frames = [json.loads(await asyncio.wait_for(browser.recv(), TIMEOUT)) for _ in range(2)]
    drop, base = sorted(consumer.seen, key=lambda m: m.topic)
    assert [drop.id, base.id] == sent["ids"]
    assert isinstance(drop, SchemaMessage) and drop.schema.name == "hotness.update.drop"
    assert drop.body == HOTNESS_BODY
    assert drop.packages == ["python-moksha"] and "rawhide" in drop.summary
    assert drop.headers["fedora_messaging_rpm_python-moksha"] == "true"
    assert drop.headers["fedora_messaging_severity"] == "20"
    assert drop.timestamp == datetime.fromisoformat(sent["sent_at"])
    assert not isinstance(base, SchemaMessage)  # base.message: no schema beyond "an object"
    assert base.headers["fedora_messaging_schema"] == "base.message"
    assert base.body == {"hello": "moksha"}
    assert sorted(frame["body"].get("hello", "drop") for frame in frames) == ["drop", "moksha"]


@pytest.fixture
async def fedora_queue(topic: str) -> AsyncIterator[str]:
    """A queue bound to the test's topic, declared as the fedora-messaging consumer will."""
    name = f"test.{RUN}.i12.{uuid4().hex[:8]}"
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, durable=False, auto_delete=False)
        await queue.bind("amq.topic", routing_key=f"{topic}.#")
        yield name
        await channel.queue_delete(name)


async def test_fedora_messaging_consume_accepts_and_validates_what_moksha_publishes(
    topic: str, conf: Path, fedora_queue: str
) -> None:
    settings = {**amqp(), "amqp_durable_queues": False}
    build = type("Build", (BuildDone,), {"topic": f"{topic}.build"})  # a schema of Moksha's
    async with MokshaHub(settings, schemas=[build]) as hub:
        drop = await hub.publish(
            topic, HOTNESS_BODY, headers={"fedora_messaging_schema": "hotness.update.drop"}
        )
        plain = await hub.publish(topic, {"free": "form"})
        built = await hub.publish(f"{topic}.build", build_body())
    out = await asyncio.to_thread(finished, peer("consume", str(conf), fedora_queue, topic, "3"))
    accepted = [json.loads(line) for line in out.splitlines()]
    by_id = {line["id"]: line for line in accepted}
    assert set(by_id) == {drop.id, plain.id, built.id}
    seen = by_id[drop.id]
    assert seen["class"] == "UpdateDrop" and seen["packages"] == ["python-moksha"]
    assert seen["headers"]["fedora_messaging_severity"] == 20
    assert seen["headers"]["fedora_messaging_rpm_python-moksha"] is True
    assert seen["headers"]["priority"] == 0
    datetime.fromisoformat(seen["headers"]["sent-at"])
    other = by_id[plain.id]
    assert other["class"] == "Message" and other["body"] == {"free": "form"}
    assert other["headers"]["fedora_messaging_schema"] == "base.message"
    # A schema fedora-messaging does not have: it falls back to its base class, and accepts it.
    mine = by_id[built.id]
    assert mine["class"] == "Message" and mine["body"] == build_body()
    assert mine["headers"]["fedora_messaging_schema"] == f"{build.__module__}.Build"
    assert mine["headers"]["fedora_messaging_severity"] == 30
    assert mine["headers"]["fedora_messaging_user_ralph"] is True
    assert mine["headers"]["fedora_messaging_rpm_moksha"] is True


def test_a_fedora_messaging_message_shows_in_a_browsers_feed_with_its_summary(
    topic: str, conf: Path, browser: Browser
) -> None:
    settings = {**amqp(), "amqp_durable_queues": False}
    with Site(settings, []) as site:
        context = browser.new_context()
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        page = context.new_page()
        # The feed widget's own page, on this test's topics only (the shared broker is busy).
        page.goto(f"{site.url}/widgets/feed?topic={topic}.%23")
        # The feed subscribes once the page's script ran.
        site.wait_until(lambda: site.live is not None and site.live.stats()["subscriptions"] >= 1)
        finished(peer("publish", str(conf), topic))
        entry = page.locator(f'.moksha-feed-entry[data-topic="{topic}"] .moksha-summary')
        entry.first.wait_for()
        text = entry.first.inner_text()
        assert "python-moksha" in text and "rawhide" in text  # the hotness schema's summary
        context.close()
