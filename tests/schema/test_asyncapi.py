"""The AsyncAPI 3.0 document: valid against the official schema, listing what runs."""

from __future__ import annotations

import copy
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from schemas_support import HOTNESS_TOPIC, BuildDone, asyncapi_problems

from moksha.cli import main
from moksha.config import load_config
from moksha.schema import SchemaRegistry, installed_schemas
from moksha.schema.asyncapi import asyncapi_document

SECRET = "s" * 40


@pytest.fixture
def quickstart_consumer(tmp_path: Path) -> Iterator[type[Any]]:
    """The consumer class of a package ``moksha quickstart`` generated (topic test.qs.event)."""
    target = tmp_path / "qsdemo"
    assert (
        main(
            ["quickstart", "qsdemo", "--consumer", "--topic", "test.qs.event", "--dir", str(target)]
        )
        == 0
    )
    sys.path.insert(0, str(target / "src"))
    try:
        yield importlib.import_module("qsdemo.consumer").QsdemoConsumer
    finally:
        sys.path.remove(str(target / "src"))
        for name in [n for n in sys.modules if n == "qsdemo" or n.startswith("qsdemo.")]:
            del sys.modules[name]


def test_the_document_is_valid_and_lists_a_quickstart_packages_channel(
    asyncapi_schema: dict[str, Any], quickstart_consumer: type[Any]
) -> None:
    config = load_config(
        overrides={
            "amqp_broker": "amqp://guest:guest@127.0.0.1:5672/",
            "moksha.livesocket.protected": "secret.#",
            "moksha.livesocket.token_secret": SECRET,
            "moksha.livesocket.publish_allow": "chat.*",
        },
        environ={},
        search=False,
    )
    registry = SchemaRegistry(installed_schemas())
    registry.add_class(BuildDone)
    doc = asyncapi_document(
        config, registry, [quickstart_consumer], [], livesocket_url="http://127.0.0.1:9998"
    )
    assert asyncapi_problems(doc, asyncapi_schema) == []
    addresses = {channel["address"]: key for key, channel in doc["channels"].items()}
    assert "test.qs.event" in addresses
    receive = [op for op in doc["operations"].values() if op["action"] == "receive"]
    assert receive[0]["channel"] == {"$ref": f"#/channels/{addresses['test.qs.event']}"}
    # Its generated schema (the consumer declares it) is the channel's message.
    channel = doc["channels"][addresses["test.qs.event"]]
    assert list(channel["messages"]) == ["qsdemo.schemas.QsdemoEvent"]
    assert receive[0]["messages"] == [
        {"$ref": f"#/channels/{addresses['test.qs.event']}/messages/qsdemo.schemas.QsdemoEvent"}
    ]
    # Schemas become messages with their payloads; patterns say they are patterns.
    drop = doc["components"]["messages"]["hotness.update.drop"]
    assert drop["payload"]["schema"]["required"] == ["reason", "trigger"]
    assert HOTNESS_TOPIC in addresses
    build = doc["channels"][addresses["test.schema.build.*"]]
    assert "AsyncAPI has no wildcards" in build["description"]
    # The live socket: a server with a token scheme, protected channels, browser publishes.
    assert doc["servers"]["livesocket"]["security"]
    assert "Protected" in doc["channels"][addresses["secret.#"]]["description"]
    assert any(
        op["title"].startswith("browsers publish to chat.*") for op in doc["operations"].values()
    )


def test_the_official_schema_does_refuse_a_broken_document(asyncapi_schema: dict[str, Any]) -> None:
    """The check above can fail: a document missing what AsyncAPI requires is refused."""
    config = load_config(overrides={}, environ={}, search=False)
    doc = asyncapi_document(config, installed_schemas())
    assert asyncapi_problems(doc, asyncapi_schema) == []
    broken = copy.deepcopy(doc)
    del broken["info"]["version"]
    broken["channels"]["x"] = {"address": 5}
    assert len(asyncapi_problems(broken, asyncapi_schema)) >= 2


def test_moksha_asyncapi_writes_the_document(
    tmp_path: Path, asyncapi_schema: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setenv("MOKSHA_BACKENDS", "memory")
    out = tmp_path / "asyncapi.json"
    assert main(["asyncapi", "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert asyncapi_problems(doc, asyncapi_schema) == []
    assert doc["asyncapi"] == "3.0.0"
