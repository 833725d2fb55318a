"""Schemas checked where messages enter and leave: publish, consume, the live socket (memory)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any
from uuid import uuid4

import aio_pika
import httpx
import pytest
import websockets
from schemas_support import HOTNESS_BODY, HOTNESS_TOPIC, BuildDone, build_body

from moksha.errors import ConfigError, ValidationError
from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer
from moksha.message import JSON, Message
from moksha.schema import SchemaMessage
from support import RUN, TIMEOUT, amqp, until

TOPIC = "test.schema.build.done"


def config(**settings: Any) -> dict[str, Any]:
    return {"moksha.backends": "memory", **settings}


class Collecting(Consumer):
    """Keeps what reaches consume() (one list per test: reset in the fixture)."""

    topic = "test.schema.#"
    seen: list[Any] = []

    async def consume(self, message: Any) -> None:
        self.seen.append(message)


@pytest.fixture(autouse=True)
def fresh_collector() -> None:
    Collecting.seen = []


async def test_an_invalid_publish_raises_and_sends_nothing() -> None:
    async with CentralMokshaHub(config(), [Collecting], [], schemas=[BuildDone]) as hub:
        with pytest.raises(ValidationError) as failed:
            await hub.publish(TOPIC, build_body(version="latest"))
        assert failed.value.path == "body.version"
        assert TOPIC in str(failed.value)
        with pytest.raises(ValidationError):
            hub.send_message(TOPIC, {"package": "moksha"})
        await hub.publish(TOPIC, build_body())
        await until(lambda: len(Collecting.seen) == 1)
        assert [m.body for m in Collecting.seen] == [build_body()]


async def test_a_consumer_receives_the_schema_view_of_its_message() -> None:
    async with CentralMokshaHub(config(), [Collecting], [], schemas=[BuildDone]) as hub:
        await hub.publish(TOPIC, build_body())
        await hub.publish("test.schema.free", {"anything": True})  # no schema: passes as is
        await until(lambda: len(Collecting.seen) == 2)
    checked, free = Collecting.seen
    assert isinstance(checked, SchemaMessage)
    assert checked.summary == "ralph built moksha 2.0.1" == str(checked)
    assert (checked.usernames, checked.packages, checked.severity) == (["ralph"], ["moksha"], 30)
    assert checked["body"] == build_body()  # still the original dict-style message
    assert not isinstance(free, SchemaMessage)


@pytest.mark.parametrize("mode", ["enforce", "warn"])
async def test_an_invalid_message_from_a_foreign_publisher_on_amqp(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """enforce: it goes to the dead letters with the reason, never to consume(); warn: logged."""
    base = f"test.{RUN}.i12.checks.{uuid4().hex[:8]}"
    schema = type("Build", (BuildDone,), {"topic": f"{base}.build"})
    consumer = type("Reader", (Collecting,), {"topic": f"{base}.#", "seen": []})
    settings = {**amqp(), "amqp_durable_queues": False, "moksha.schema.mode": mode}
    async with CentralMokshaHub(settings, [consumer], [], schemas=[schema]) as hub:
        dead: list[Message] = []
        await hub.asubscribe(f"{base}.build.dead", dead.append)
        connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange("amq.topic")
            for body in (build_body(count="three"), build_body(count=3)):
                await exchange.publish(
                    aio_pika.Message(json.dumps(body).encode(), content_type=JSON),
                    routing_key=f"{base}.build",
                )
        if mode == "enforce":
            # The reader sees the good one, and the dead letter (its pattern covers it).
            await until(lambda: len(dead) == 1 and len(consumer.seen) == 2)
            letter = dead[0]
            assert letter.body["count"] == "three"
            assert letter.headers["moksha-dead-letter"] == f"{base}.build"
            assert "body.count" in letter.headers["moksha-error"]
            assert "ValidationError" in letter.headers["moksha-error"]
            consumed = {m.topic: m.body["count"] for m in consumer.seen}
            assert consumed == {f"{base}.build": 3, f"{base}.build.dead": "three"}
        else:
            await until(lambda: len(consumer.seen) == 2)
            assert sorted(str(m.body["count"]) for m in consumer.seen) == ["3", "three"]
            assert "consumed anyway" in caplog.text and not dead
    good = next(m for m in consumer.seen if m.body["count"] == 3)
    assert isinstance(good, SchemaMessage) and good.summary == "ralph built moksha 2.0.1"


async def test_warn_mode_logs_and_publishes(caplog: pytest.LogCaptureFixture) -> None:
    settings = config(**{"moksha.schema.mode": "warn"})
    async with CentralMokshaHub(settings, [Collecting], [], schemas=[BuildDone]) as hub:
        with caplog.at_level(logging.WARNING, logger="moksha.schema"):
            await hub.publish(TOPIC, build_body(version="x"))
            await until(lambda: len(Collecting.seen) == 1)
    assert "published anyway" in caplog.text and "body.version" in caplog.text


async def test_off_mode_checks_nothing() -> None:
    settings = config(**{"moksha.schema.mode": "off"})
    async with CentralMokshaHub(settings, [Collecting], [], schemas=[BuildDone]) as hub:
        assert not hub.schemas.active
        await hub.publish(TOPIC, ["not", "an", "object"])
        await until(lambda: len(Collecting.seen) == 1)
    assert not isinstance(Collecting.seen[0], SchemaMessage)


async def test_an_installed_fedora_schema_is_applied_without_being_named() -> None:
    async with CentralMokshaHub(config()) as hub:
        received: list[Message] = []
        await hub.asubscribe(HOTNESS_TOPIC, received.append)
        with pytest.raises(ValidationError, match=r"hotness\.update\.drop"):
            await hub.publish(HOTNESS_TOPIC, {"reason": "rawhide"})
        await hub.publish(HOTNESS_TOPIC, HOTNESS_BODY)
        await until(lambda: len(received) == 1)
        assert [m.body for m in received] == [HOTNESS_BODY]


async def test_a_consumer_declaring_its_messages_gets_them_checked() -> None:
    class Declaring(Collecting):
        messages = [BuildDone]

    async with CentralMokshaHub(config(), [Declaring], []) as hub:
        with pytest.raises(ValidationError):
            await hub.publish(TOPIC, {})


def test_a_consumer_declaring_a_non_schema_is_refused() -> None:
    class Wrong(Collecting):
        messages = [dict]

    with pytest.raises(Exception, match="messages list holds a non-schema"):
        CentralMokshaHub(config(), [Wrong], [])


async def _live_hub(**settings: Any) -> CentralMokshaHub:
    hub = CentralMokshaHub(
        config(
            **{
                "moksha.livesocket.backend": "websocket",
                "moksha.livesocket.websocket.port": 0,
                "moksha.livesocket.publish_allow": "test.#",
                **settings,
            }
        ),
        [Collecting],
        [],
        schemas=[BuildDone],
    )
    await hub.start()
    return hub


async def test_a_browser_publish_that_fails_gets_an_error_frame_and_nothing_is_sent() -> None:
    hub = await _live_hub()
    try:
        assert hub.livesocket_url is not None
        url = hub.livesocket_url.replace("http://", "ws://") + "/livesocket/ws"
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"topic": TOPIC, "body": build_body(owner="ralph")}))
            frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert frame["topic"] == "__error__"
            assert "body.owner" in frame["body"]["error"] and TOPIC in frame["body"]["error"]
            await ws.send(json.dumps({"topic": TOPIC, "body": build_body()}))
            await until(lambda: len(Collecting.seen) == 1)
        assert Collecting.seen[0].body == build_body()
    finally:
        await hub.aclose()


async def test_an_http_publish_that_fails_gets_422_and_nothing_is_sent() -> None:
    hub = await _live_hub()
    try:
        url = f"{hub.livesocket_url}/livesocket/publish"
        async with httpx.AsyncClient() as client:
            refused = await client.post(url, json={"topic": TOPIC, "body": {"package": 1}})
            accepted = await client.post(url, json={"topic": TOPIC, "body": build_body()})
        assert refused.status_code == 422
        assert refused.json()["schema"].endswith("BuildDone")
        assert TOPIC in refused.json()["error"]
        assert accepted.status_code == 200
        await until(lambda: len(Collecting.seen) == 1)
        assert [m.id for m in Collecting.seen] == [accepted.json()["id"]]
    finally:
        await hub.aclose()


async def test_a_plain_json_schema_file_is_a_schema_too(tmp_path: Path) -> None:
    path = tmp_path / "reading.json"
    path.write_text(
        json.dumps(
            {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "title": "sensor.reading",
                "x-moksha-topic": "test.schema.sensors.*",
                "type": "object",
                "required": ["celsius"],
                "properties": {"celsius": {"type": "number"}},
            }
        )
    )
    settings = config(**{"moksha.schema.files": str(path)})
    async with CentralMokshaHub(settings, [Collecting], []) as hub:
        with pytest.raises(ValidationError, match=r"'sensor\.reading'") as failed:
            await hub.publish("test.schema.sensors.kitchen", {"celsius": "warm"})
        assert failed.value.path == "body.celsius"
        await hub.publish("test.schema.sensors.kitchen", {"celsius": 21.5})
        await until(lambda: len(Collecting.seen) == 1)
    assert Collecting.seen[0].schema.name == "sensor.reading"


def test_a_schema_file_without_a_topic_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "untitled.json"
    path.write_text(json.dumps({"type": "object"}))
    with pytest.raises(ConfigError, match=r"moksha\.schema\.files.*x-moksha-topic"):
        CentralMokshaHub(config(**{"moksha.schema.files": str(path)}), [], [])
