"""Schema classes and bodies the schema tests share."""

from __future__ import annotations

from typing import Any

import jsonschema

from moksha.schema import WARNING, Message

HOTNESS_TOPIC = "org.fedoraproject.prod.hotness.update.drop"
"""A topic of fedora-messaging-the-new-hotness-schema (a real package from PyPI)."""

HOTNESS_BODY: dict[str, Any] = {
    "reason": "rawhide",
    "trigger": {
        "msg": {"package": {"name": "python-moksha"}},
        "topic": "org.fedoraproject.prod.anitya.project.version.update",
    },
}


class BuildDone(Message):
    """A typical schema: required fields, a nested object, a pattern."""

    topic = "test.schema.build.*"
    severity = WARNING
    body_schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": ["package", "version", "owner"],
        "properties": {
            "package": {"type": "string"},
            "version": {"type": "string", "pattern": "^[0-9.]+$"},
            "owner": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}},
            },
            "count": {"type": "integer", "minimum": 0},
        },
    }

    @property
    def summary(self) -> str:
        return f"{self.body['owner']['name']} built {self.body['package']} {self.body['version']}"

    @property
    def usernames(self) -> list[str]:
        return [self.body["owner"]["name"]]

    @property
    def packages(self) -> list[str]:
        return [self.body["package"]]


def build_body(**changes: Any) -> dict[str, Any]:
    """A body BuildDone accepts, with ``changes`` applied."""
    return {"package": "moksha", "version": "2.0.1", "owner": {"name": "ralph"}, **changes}


def asyncapi_problems(document: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """What the official AsyncAPI schema finds wrong with ``document`` (empty: valid)."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message[:200]}"
        for error in validator.iter_errors(document)
    ]
