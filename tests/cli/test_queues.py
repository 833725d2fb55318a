"""``moksha queues`` and ``moksha queues prune`` against the local RabbitMQ.

Each test uses an ``amqp_queue_prefix`` of its own, so the queue registry it
reads holds only the queues it made: the prune tests can never reach another
developer's queues on the shared broker, and the fixture deletes what is left.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import aio_pika
import pytest

from moksha.cli import main
from moksha.config import load_config
from moksha.errors import BackendError
from moksha.hub.backends.amqp import AMQPBackend
from moksha.hub.backends.amqp_options import to_amqp
from moksha.hub.backends.amqp_registry import Registry, dead_letter_queue, registry_queue
from moksha.message import Message
from support import RUN, Received, require_service

BROKER = "amqp://guest:guest@127.0.0.1:5672/"
DEMO_PLUGIN = Path(__file__).parent.parent / "data" / "cli"
# The demo plugin's consumer: its group is its dotted path.
DEMO_GROUP = "demo_plugin.PingRecorder"


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The demo plugin (consumer ``demo_plugin:PingRecorder``) installed in this process."""
    target = tmp_path / "site"
    shutil.copytree(DEMO_PLUGIN, target)
    monkeypatch.syspath_prepend(str(target))
    yield
    sys.modules.pop("demo_plugin", None)


@pytest.fixture
def prefix() -> Iterator[str]:
    """This test's ``amqp_queue_prefix``; its queues and registry are deleted afterwards."""
    require_service("RabbitMQ", 5672)
    name = f"test.{RUN}.{uuid4().hex[:8]}"
    yield name
    asyncio.run(_delete_all(name))


async def _delete_all(prefix: str) -> None:
    async with Registry.open(BROKER, prefix) as registry:
        for queue in list(registry.records):
            await registry.delete(queue)
    async with await aio_pika.connect(BROKER) as connection:
        channel = await connection.channel()
        await channel.queue_delete(registry_queue(prefix))
        await channel.queue_delete(f"{prefix}.foreign")


def backend(prefix: str) -> AMQPBackend:
    overrides = {"amqp_broker": BROKER, "amqp_queue_prefix": prefix}
    return AMQPBackend(load_config(overrides=overrides, environ={}, search=False))


async def make_queue(prefix: str, group: str, topic: str, waiting: int) -> None:
    """A hub runs a consumer of ``group`` once; then ``waiting`` messages queue up for it."""
    async with backend(prefix) as hub:
        subscription = await hub.subscribe([topic], Received(), group=group)
        await subscription.cancel()
        for n in range(waiting):
            await hub.publish(Message(topic, n))


async def queue_exists(name: str) -> bool:
    async with await aio_pika.connect(BROKER) as connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        return True


@pytest.fixture
def two_queues(prefix: str, tmp_path: Path, installed_plugin: None) -> Path:
    """The demo consumer's queue (3 waiting) and an orphan's (2 waiting); the INI naming them."""
    asyncio.run(make_queue(prefix, DEMO_GROUP, f"{prefix}.ping", 3))
    asyncio.run(make_queue(prefix, f"{prefix}.Renamed", f"{prefix}.old", 2))
    ini = tmp_path / "moksha.ini"
    ini.write_text(f"[app:main]\namqp_broker = {BROKER}\namqp_queue_prefix = {prefix}\n")
    return ini


def test_queues_lists_depth_consumers_bindings_and_owner(
    two_queues: Path, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["queues", "-c", str(two_queues)]) == 0
    out = capsys.readouterr().out
    demo = next(line for line in out.splitlines() if f"{prefix}.demo_plugin" in line)
    assert "demo_plugin:PingRecorder" in demo and f"{prefix}.ping" in demo
    orphan = next(line for line in out.splitlines() if "Renamed" in line)
    assert "orphan" in orphan and f"{prefix}.old" in orphan

    assert main(["queues", "--json", "-c", str(two_queues)]) == 0
    rows = {row["group"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows[DEMO_GROUP] == {
        "backend": "amqp",
        "queue": f"{prefix}.{DEMO_GROUP}",
        "group": DEMO_GROUP,
        "depth": 3,
        "consumers": 0,
        "dead_letters": 0,
        "bindings": [f"{prefix}.ping"],
        "owner": "demo_plugin:PingRecorder",
    }
    assert rows[f"{prefix}.Renamed"]["owner"] == "orphan"
    assert rows[f"{prefix}.Renamed"]["depth"] == 2


def test_prune_dry_run_deletes_nothing(
    two_queues: Path, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["queues", "prune", "--dry-run", "-c", str(two_queues)]) == 0
    out = capsys.readouterr().out
    assert f"would delete: amqp queue {prefix}.{prefix}.Renamed: 2 message(s) waiting" in out
    assert "PingRecorder" not in out
    assert asyncio.run(queue_exists(f"{prefix}.{prefix}.Renamed"))


def test_prune_refused_at_the_prompt_deletes_nothing(
    two_queues: Path, prefix: str, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    assert main(["queues", "prune", "-c", str(two_queues)]) == 1
    out = capsys.readouterr().out
    assert "Delete these 1 queue(s)?" in out and "Nothing deleted." in out
    assert asyncio.run(queue_exists(f"{prefix}.{prefix}.Renamed"))


def test_prune_yes_deletes_the_orphan_and_its_dead_letters_only(
    two_queues: Path, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    orphan = f"{prefix}.{prefix}.Renamed"
    # The orphan's last release dead-lettered something; a foreign queue sits beside it.
    asyncio.run(_dead_letter_one(prefix, orphan))
    assert main(["queues", "prune", "--yes", "-c", str(two_queues)]) == 0
    out = capsys.readouterr().out
    assert "1 dead letter(s)" in out and f"deleted amqp queue {orphan}" in out
    assert not asyncio.run(queue_exists(orphan))
    assert not asyncio.run(queue_exists(dead_letter_queue(orphan)))
    assert asyncio.run(queue_exists(f"{prefix}.{DEMO_GROUP}"))
    assert asyncio.run(queue_exists(f"{prefix}.foreign"))


async def _dead_letter_one(prefix: str, orphan: str) -> None:
    async with await aio_pika.connect(BROKER) as connection:
        channel = await connection.channel()
        await channel.declare_queue(f"{prefix}.foreign", durable=True)
        await channel.declare_queue(dead_letter_queue(orphan), durable=True)
        await channel.default_exchange.publish(
            to_amqp(Message("x", 1)), routing_key=dead_letter_queue(orphan)
        )


def test_prune_keeps_an_orphan_a_hub_consumes_from(
    two_queues: Path, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def prune_while_consuming() -> int:
        async with backend(prefix) as hub:
            await hub.subscribe([f"{prefix}.old"], Received(), group=f"{prefix}.Renamed")
            argv = ["queues", "prune", "--yes", "-c", str(two_queues)]
            return await asyncio.to_thread(main, argv)

    assert asyncio.run(prune_while_consuming()) == 0
    out = capsys.readouterr().out
    assert f"kept (a hub consumes from it): amqp queue {prefix}.{prefix}.Renamed" in out
    assert asyncio.run(queue_exists(f"{prefix}.{prefix}.Renamed"))


def test_a_queue_moksha_did_not_create_is_never_deleted(prefix: str) -> None:
    async def attempt() -> None:
        async with await aio_pika.connect(BROKER) as connection:
            channel = await connection.channel()
            await channel.declare_queue(f"{prefix}.foreign", durable=True)
        with pytest.raises(BackendError, match="Moksha deletes only the queues it created"):
            await backend(prefix).delete_durable_queue(f"{prefix}.foreign")
        assert await queue_exists(f"{prefix}.foreign")

    asyncio.run(attempt())


def test_a_backend_that_cannot_list_its_queues_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = tmp_path / "stomp.ini"
    ini.write_text("[app:main]\nstomp_uri = 127.0.0.1:61613\n")
    assert main(["queues", "-c", str(ini)]) == 1
    captured = capsys.readouterr()
    assert "Warning: stomp: STOMP cannot list a broker's queues" in captured.err
    assert "rabbitmqctl list_queues" in captured.err
