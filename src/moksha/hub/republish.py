"""Publishing a whole message again: its payload and headers, under an id chosen by the caller.

:meth:`MokshaHub.publish <moksha.hub.client.MokshaHub.publish>` builds a new
message from a body; the archive's replay and dead-letter requeue need more:
the stored payload as it was (JSON or not) and its headers, under an id they
record before publishing.  This lives apart from the client so the client
stays the small publish/subscribe API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moksha.errors import HubClosed
from moksha.hub.core import HubState
from moksha.message import Message

if TYPE_CHECKING:
    from moksha.hub.client import MokshaHub

__all__ = ["publish_message"]


async def publish_message(hub: MokshaHub, message: Message) -> Message:
    """Publish ``message`` as it is (id, headers, payload) through every backend of ``hub``.

    Returns:
        ``message``.

    Raises:
        HubClosed: the hub is not running.
        BackendError: a backend failed to send it.
    """
    if hub.state not in (HubState.RUNNING, HubState.STOPPING):
        raise HubClosed(f"cannot publish on {message.topic!r}: the hub is {hub.state.value}")
    hub.published.count(message.topic)
    for backend in hub.backends:
        waiting = backend.offer(message)
        if waiting is not None:
            await waiting
    return message
