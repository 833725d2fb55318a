"""Schema classes, the installed registry and the check of one body."""

from __future__ import annotations

import pytest
from schemas_support import HOTNESS_BODY, HOTNESS_TOPIC, BuildDone, build_body

from moksha.errors import ValidationError
from moksha.message import Message
from moksha.schema import Schema, SchemaRegistry, installed_schemas, schema_class_problem


def test_an_installed_fedora_messages_package_is_found_with_its_name_and_package() -> None:
    schema = installed_schemas().by_name["hotness.update.drop"]
    assert schema.group == "fedora.messages"
    assert (schema.package or "").replace("_", "-") == "fedora-messaging-the-new-hotness-schema"
    assert installed_schemas().for_topic(HOTNESS_TOPIC) is schema


def test_a_fedora_messaging_class_validates_and_gives_its_own_summary() -> None:
    schema = installed_schemas().by_name["hotness.update.drop"]
    schema.validate(HOTNESS_TOPIC, HOTNESS_BODY)
    view = schema.view(Message(HOTNESS_TOPIC, HOTNESS_BODY))
    assert view.packages == ["python-moksha"]
    assert "python-moksha" in view.summary and "rawhide" in view.summary


def test_a_failing_body_names_the_topic_the_schema_and_the_path() -> None:
    schema = Schema("build.done", BuildDone)
    with pytest.raises(ValidationError) as failed:
        schema.validate("test.schema.build.done", build_body(owner={"name": 7}))
    error = failed.value
    assert (error.topic, error.schema, error.path) == (
        "test.schema.build.done",
        "build.done",
        "body.owner.name",
    )
    text = str(error)
    assert "'test.schema.build.done'" in text and "'build.done'" in text
    assert "body.owner.name" in text and "7 is not of type 'string'" in text


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"package": "moksha"}, "body"),  # required fields missing
        (build_body(version="two"), "body.version"),
        (build_body(count=-1), "body.count"),
        ([1, 2], "body"),
    ],
)
def test_each_kind_of_failure_is_refused_with_its_path(body: object, path: str) -> None:
    with pytest.raises(ValidationError) as failed:
        Schema("build.done", BuildDone).validate("test.schema.build.x", body)
    assert failed.value.path == path


def test_a_registry_matches_patterns_and_prefers_the_header() -> None:
    registry = SchemaRegistry(installed_schemas())
    mine = registry.add_class(BuildDone)
    assert mine.name == f"{BuildDone.__module__}.BuildDone"
    assert registry.for_topic("test.schema.build.done") is mine
    assert registry.for_topic("test.schema.build.done.more") is None
    assert registry.for_topic("test.unknown") is None
    named = Message("test.unknown", {}, {"fedora_messaging_schema": "hotness.update.drop"})
    assert registry.for_message(named) is registry.by_name["hotness.update.drop"]
    # The cached installed registry is not changed by additions to a copy.
    assert installed_schemas().for_topic("test.schema.build.done") is None


def test_what_is_not_a_schema_class_is_said() -> None:
    class NoSchema:
        pass

    class BadSchema(BuildDone):
        body_schema = {"type": "no-such-type"}

    assert "no body_schema" in (schema_class_problem(NoSchema) or "")
    assert "not a valid JSON Schema" in (schema_class_problem(BadSchema) or "")
    assert schema_class_problem(BuildDone) is None
    with pytest.raises(TypeError, match="not a valid JSON Schema"):
        SchemaRegistry().add_class(BadSchema)


def test_a_schema_newer_than_fastjsonschema_knows_is_still_checked() -> None:
    class Newer(BuildDone):
        body_schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"tags": {"type": "array", "prefixItems": [{"type": "string"}]}},
        }

    schema = Schema("newer", Newer)
    schema.validate("t", {"tags": ["a", 1]})
    with pytest.raises(ValidationError, match=r"body\.tags\[0\]"):
        schema.validate("t", {"tags": [1]})
