"""The backend contract's rule on durable subscriptions (``moksha.hub.backends.base``).

A backend whose group subscriptions outlive the hub must list and delete what
it keeps (``moksha queues``); a new durable backend (JetStream, Redis Streams,
MQTT sessions) that forgets fails here.
"""

from __future__ import annotations

import pytest

from moksha.config import load_config
from moksha.errors import BackendError
from moksha.hub.backends import Backend, MemoryBackend, available_backends, backend_class

DURABLE = sorted(name for name in available_backends() if backend_class(name).capabilities.durable)


def test_every_broker_that_keeps_group_subscriptions_says_it_is_durable() -> None:
    assert set(DURABLE) == {"amqp", "mqtt", "nats", "redis", "stomp"}


@pytest.mark.parametrize("name", DURABLE)
def test_a_durable_backend_lists_and_deletes_its_durable_queues(name: str) -> None:
    cls = backend_class(name)
    assert cls.durable_queues is not Backend.durable_queues, f"{name} must list its queues"
    assert cls.delete_durable_queue is not Backend.delete_durable_queue


async def test_a_backend_without_durable_queues_lists_none_and_deletes_nothing() -> None:
    backend = MemoryBackend(load_config(environ={}, search=False))
    assert await backend.durable_queues() == []
    with pytest.raises(BackendError, match="keeps no durable queues"):
        await backend.delete_durable_queue("moksha.anything")
