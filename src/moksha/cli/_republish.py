"""How the shell's replay and requeue publish whole messages: brokers, else a running hub.

With brokers configured, a client hub publishes each message as it is (id,
headers, payload).  With none (the embedded default), the messages go through
the ``moksha start`` hub found on this machine (or ``--hub``); that hub
chooses the ids, and they are what is recorded.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from moksha.cli.remote import find_hub, no_hub_found, publish_remote
from moksha.config import Config
from moksha.errors import BackendUnavailable
from moksha.hub import MokshaHub
from moksha.hub.backends import select_backends
from moksha.hub.backends.memory import MemoryBackend
from moksha.hub.republish import publish_message
from moksha.message import Message

__all__ = ["Publish", "publisher"]

Publish = Callable[[Message], Awaitable[str]]
"""Publishes one message; returns the id it went out under."""


@contextlib.asynccontextmanager
async def publisher(config: Config, hub_url: str | None) -> AsyncIterator[Publish]:
    """A publish function for the command's lifetime.

    Raises:
        BackendUnavailable: no broker is configured and no hub answers.
    """
    brokers = [cls.name for cls in select_backends(config)] != [MemoryBackend.name]
    url = hub_url
    if url is None and not brokers:
        url = await find_hub(config)
        if url is None:
            raise BackendUnavailable(no_hub_found(config))
    if url is not None:
        remote = url

        async def through_hub(message: Message) -> str:
            body = message.payload.decode("utf-8", "replace")
            new_id, _ = await publish_remote(remote, message.topic, body, message.headers, raw=True)
            return new_id

        yield through_hub
        return
    async with MokshaHub(config) as hub:

        async def through_brokers(message: Message) -> str:
            return (await publish_message(hub, message)).id

        yield through_brokers
