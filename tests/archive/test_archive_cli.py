"""moksha archive search, moksha replay and moksha dead, in-process, publishing through RabbitMQ."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from archive_support import KNOWN, PREFIX, dead_letter, fill

from moksha.archive import ArchiveStore
from moksha.cli import main
from moksha.hub import MokshaHub
from support import Inbox, amqp


def write_ini(path: Path, settings: dict[str, Any]) -> str:
    lines = ["[app:main]", *(f"{key} = {value}" for key, value in settings.items())]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def ini(archive_url: str, tmp_path: Path) -> str:
    """A config file naming the archive and RabbitMQ (the brokers replays go out through)."""
    broker = amqp()
    settings = {
        "moksha.archive": "true",
        "moksha.archive.url": archive_url,
        "moksha.archive.topic_prefix": PREFIX,
        "moksha.backends": broker["moksha.backends"],
        "amqp_broker": broker["amqp_broker"],
        "amqp_queue_prefix": broker["amqp_queue_prefix"],
        "amqp_durable_queues": "false",
    }
    fill(archive_url)
    return write_ini(tmp_path / "archive.ini", settings)


@pytest.fixture
def listener() -> Iterator[tuple[str, Inbox]]:
    """A subscriber on RabbitMQ to a topic space of its own; yields (prefix, inbox)."""
    prefix = f"i14test.{uuid.uuid4().hex[:8]}"
    inbox = Inbox()
    with MokshaHub({**amqp(), "amqp_durable_queues": False}) as hub:
        hub.subscribe(f"{prefix}.#", lambda message: inbox(message), jsonify=True)
        yield prefix, inbox


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_archive_search_prints_a_table_or_json_lines(
    ini: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "-c", ini, "archive", "search", "--user", "bob", "--json")
    assert code == 0
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["m3", "m2"]
    assert "2 of 2" in err
    code, out, _ = run(
        capsys, "-c", ini, "archive", "search", "--not-user", "bob", "--order", "asc", "--rows", "1"
    )
    assert code == 0 and "m1" in out and "m4" not in out
    code, _, err = run(capsys, "-c", ini, "archive", "search", "--start", "yesterday")
    assert code == 2 and "ISO 8601" in err


def test_replay_republishes_in_order_with_the_replayed_header(
    ini: str, listener: tuple[str, Inbox], capsys: pytest.CaptureFixture[str]
) -> None:
    prefix, inbox = listener
    to_topic = f"{prefix}.{{topic}}"
    code, out, _ = run(
        capsys, "-c", ini, "replay", "--topic", f"{PREFIX}.#", "--to-topic", to_topic, "--dry-run"
    )
    assert code == 0
    assert out.splitlines()[0] == f"would replay m1 on {prefix}.{KNOWN['m1'].topic}"
    code, _, err = run(
        capsys, "-c", ini, "replay", "--topic", f"{PREFIX}.#", "--since", "1500",
        "--to-topic", to_topic,
    )  # fmt: skip
    assert code == 0 and "replayed 2 messages" in err
    code, _, _ = run(capsys, "-c", ini, "replay", "--id", "m4", "--to-topic", to_topic)
    assert code == 0
    received = inbox.wait(3)
    assert [m["headers"]["moksha-replayed"] for m in received] == ["m2", "m3", "m4"]
    assert received[0]["topic"] == f"{prefix}.{KNOWN['m2'].topic}"
    assert received[0]["body"] == {"build": "bash-5"}
    assert received[0]["headers"]["fedora_messaging_user_bob"] == "true"
    assert received[2]["body"] == "plain text"
    assert len({m["id"] for m in received} & set(KNOWN)) == 0  # new ids


def test_dead_list_requeue_and_purge(
    ini: str, archive_url: str, listener: tuple[str, Inbox], capsys: pytest.CaptureFixture[str]
) -> None:
    prefix, inbox = listener
    first = dead_letter(f"{prefix}.orders", "out of stock")
    second = dead_letter(f"{prefix}.orders", "card declined")
    other = dead_letter(f"{prefix}.refunds", "bank down")
    store = ArchiveStore(archive_url)
    store.record([first, second, other])
    store.close()

    code, out, _ = run(capsys, "-c", ini, "dead", "list", "--json", "--topic", f"{prefix}.#")
    listed = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and {row["msg_id"] for row in listed} == {first.id, second.id, other.id}
    assert {row["error"] for row in listed} >= {"ValueError: out of stock"}
    assert {row["attempts"] for row in listed} == {4}

    code, out, _ = run(capsys, "-c", ini, "dead", "requeue", first.id)
    assert code == 0 and f"{first.id} on {prefix}.orders: requeued as" in out
    requeued = inbox.wait(1)[0]
    assert requeued["topic"] == f"{prefix}.orders"
    assert requeued["headers"]["moksha-requeued"] == first.id
    assert requeued["headers"]["shop-header"] == "kept"
    assert "moksha-dead-letter" not in requeued["headers"]
    assert requeued["body"] == {"order": "out of stock"}

    # Idempotent: asked again, nothing goes out.
    code, out, err = run(capsys, "-c", ini, "dead", "requeue", first.id)
    assert code == 0 and out == "" and "0 requeued" in err
    code, out, _ = run(capsys, "-c", ini, "dead", "list", "--json", "--state", "requeued")
    [done] = [json.loads(line) for line in out.splitlines()]
    assert done["msg_id"] == first.id and done["requeued_as"] == requeued["id"]

    code, out, _ = run(capsys, "-c", ini, "dead", "purge", "--all", "--error", "card")
    assert code == 0 and out.strip() == "1 dead letter discarded"
    code, out, _ = run(capsys, "-c", ini, "dead", "list", "--json")
    assert [json.loads(line)["msg_id"] for line in out.splitlines()] == [other.id]
    code, _, err = run(capsys, "-c", ini, "dead", "requeue")
    assert code == 2 and "--all" in err
    assert len(inbox.items) == 1
