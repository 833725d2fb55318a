"""``moksha record`` / ``moksha replay``: fedora-messaging's record format, both ways."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from fedora_messaging import message as fm
from fedora_peer import conf_text
from schemas_support import HOTNESS_BODY

from moksha.cli import main
from moksha.errors import MessageError
from moksha.hub import MokshaHub
from moksha.message import Message
from moksha.schema.recording import read_records
from support import RUN, TIMEOUT, amqp, until

PEER = Path(__file__).with_name("fedora_peer.py")


@pytest.fixture
def topic() -> str:
    return f"test.{RUN}.i12.record.{uuid4().hex[:8]}"


@pytest.fixture
def amqp_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    settings = amqp()
    env = {
        "MOKSHA_BACKENDS": settings["moksha.backends"],
        "MOKSHA_AMQP_BROKER": settings["amqp_broker"],
        "MOKSHA_AMQP_DURABLE_QUEUES": "false",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_moksha_records_what_fedora_messaging_publishes_in_its_own_format(
    topic: str, tmp_path: Path, amqp_env: dict[str, str]
) -> None:
    recording = tmp_path / "recorded.jsonl"
    recorder = subprocess.Popen(
        [sys.executable, "-m", "moksha", "record", str(recording), f"{topic}.#", "--count", "2"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **amqp_env},
    )
    try:
        assert recorder.stderr is not None
        assert "recording" in recorder.stderr.readline()  # subscribed: safe to publish
        conf = tmp_path / "fedora.toml"
        conf.write_text(conf_text())
        here = str(PEER.parent)
        subprocess.run(
            [sys.executable, str(PEER), "publish", str(conf), topic],
            check=True,
            capture_output=True,
            cwd=here,
            env={"PYTHONPATH": here, "PATH": "/usr/bin:/bin"},
            timeout=60,
        )
        assert recorder.wait(timeout=30) == 0
    finally:
        recorder.kill()
    # fedora-messaging reads the file back and validates each message against its schema.
    loaded = fm.loads(recording.read_text())
    drop = next(m for m in loaded if m.topic == topic)
    assert type(drop).__name__ == "UpdateDrop" and drop.body == HOTNESS_BODY
    assert drop._headers["fedora_messaging_severity"] == 20
    assert drop._headers["fedora_messaging_rpm_python-moksha"] is True


async def test_moksha_replays_a_file_fedora_messaging_wrote_ids_and_headers_kept(
    topic: str, tmp_path: Path, amqp_env: dict[str, str]
) -> None:
    from hotness_schema import UpdateDrop

    written = [UpdateDrop(body=HOTNESS_BODY, topic=f"{topic}.drop"), fm.Message(body={"n": 1})]
    written[1].topic = f"{topic}.plain"
    recording = tmp_path / "fedora.jsonl"
    recording.write_text(fm.dumps(written))
    received: list[Message] = []
    settings = {**amqp(), "amqp_durable_queues": False}
    async with MokshaHub(settings) as hub:
        await hub.asubscribe(f"{topic}.#", received.append)
        code = await _in_thread(lambda: main(["replay", str(recording)]))
        assert code == 0
        await until(lambda: len(received) == 2, TIMEOUT)
    by_topic = {m.topic: m for m in received}
    drop = by_topic[f"{topic}.drop"]
    assert drop.id == written[0].id and drop.body == HOTNESS_BODY
    assert drop.headers["fedora_messaging_schema"] == "hotness.update.drop"
    assert drop.headers["fedora_messaging_severity"] == "20"
    assert by_topic[f"{topic}.plain"].id == written[1].id


async def _in_thread(call: Any) -> Any:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    await until(lambda: not thread.is_alive(), 30)
    return result[0]


def test_a_broken_line_is_refused_with_its_number() -> None:
    lines = [json.dumps({"topic": "a.b", "body": {}}), "", json.dumps({"body": 1})]
    with pytest.raises(MessageError, match=r"rec\.jsonl, line 3: no topic"):
        list(read_records(lines, "rec.jsonl"))


def test_replay_refuses_a_message_failing_its_schema_before_sending_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOKSHA_BACKENDS", "memory")
    recording = tmp_path / "bad.jsonl"
    line = {"topic": "org.fedoraproject.prod.hotness.update.drop", "body": {"reason": "x"}}
    recording.write_text(json.dumps(line) + "\n")
    assert main(["replay", str(recording)]) == 1
    error = capsys.readouterr().err
    assert "'hotness.update.drop'" in error and "'trigger' is a required property" in error
