"""``moksha schemas list|show|validate`` and ``moksha topics``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from schemas_support import HOTNESS_BODY, HOTNESS_TOPIC

from moksha.cli import main


@pytest.fixture(autouse=True)
def memory_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOKSHA_BACKENDS", "memory")


def test_list_names_the_installed_fedora_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["hotness.update.drop"]["topic"] == HOTNESS_TOPIC
    assert rows["hotness.update.drop"]["group"] == "fedora.messages"
    assert main(["schemas", "list"]) == 0
    assert "hotness.update.drop" in capsys.readouterr().out


def test_show_prints_the_body_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "show", "hotness.update.drop"]) == 0
    out = capsys.readouterr().out
    assert HOTNESS_TOPIC in out and '"required"' in out
    assert main(["schemas", "show", "no.such"]) == 2
    assert "hotness.update.drop" in capsys.readouterr().err  # what is installed


def test_validate_says_which_message_fails_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"topic": HOTNESS_TOPIC, "body": HOTNESS_BODY}))
    assert main(["schemas", "validate", str(good)]) == 0
    assert "matches hotness.update.drop" in capsys.readouterr().out
    lines = tmp_path / "mixed.jsonl"
    lines.write_text(
        json.dumps({"topic": HOTNESS_TOPIC, "body": {"reason": "x"}})
        + "\n"
        + json.dumps({"topic": "free.topic", "body": 1})
        + "\n"
    )
    assert main(["schemas", "validate", str(lines)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "'trigger' is a required property" in out
    assert "free.topic: no schema" in out


def test_topics_without_a_hub_says_where_it_looked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics", "--hub", "http://127.0.0.1:9"]) == 1
    assert "no Moksha hub answers at http://127.0.0.1:9" in capsys.readouterr().err
