"""The queue registry's records (no broker needed); the registry itself is exercised
against RabbitMQ by ``test_amqp_bindings.py`` and ``tests/cli/test_queues.py``."""

from __future__ import annotations

import pytest

from moksha.hub.backends.amqp_registry import (
    QueueRecord,
    dead_letter_queue,
    live_marker,
    registry_queue,
)


def test_a_record_survives_its_json() -> None:
    record = QueueRecord(
        "moksha.app.Consumer",
        "app.Consumer",
        "amq.topic",
        ("a.new", "a.old"),
        {"moksha:live.1": ("a.old",), "moksha:live.2": ("a.new",)},
        serial=7,
    )
    assert QueueRecord.from_json(record.as_json()) == record


@pytest.mark.parametrize("body", [b'{"queue": "q"}', b"[1, 2]", b'{"releases": 3}', b"not json"])
def test_a_message_that_is_not_a_record_is_named_in_the_error(body: bytes) -> None:
    with pytest.raises(ValueError, match="not a queue record"):
        QueueRecord.from_json(body)


def test_names_cannot_collide_with_a_groups_queue() -> None:
    # Group queues are <prefix>.<group>, and group names never hold ':'.
    assert registry_queue("moksha") == "moksha:queues"
    assert live_marker("moksha").startswith("moksha:live.")
    assert live_marker("moksha") != live_marker("moksha")
    assert dead_letter_queue("moksha.app.Consumer") == "moksha.app.Consumer:dead-letter"
