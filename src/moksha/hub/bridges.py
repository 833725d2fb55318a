"""Bridges between a hub's backends: what others publish on one reaches every other.

A hub with several backends publishes to all of them and subscribes on the
first; a bridge forwards what other programs publish on one backend to the
others.  Messages a hub published carry its id in the ``moksha-origin``
header and went to all its backends already: they are not forwarded, so
nothing echoes between brokers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial

from moksha.hub.backends import Backend, Subscription
from moksha.hub.core import ORIGIN_HEADER
from moksha.message import Message

__all__ = ["start_bridges"]

log = logging.getLogger("moksha.hub")


async def start_bridges(backends: Sequence[Backend], hub_id: str) -> list[Subscription]:
    """Subscribe on each backend other processes publish to, forwarding to the others.

    Args:
        backends: the hub's backends (two or more).
        hub_id: the hub's id, set as ``moksha-origin`` on what it forwards.

    Returns:
        The bridges' subscriptions (cancelled when the hub stops).
    """
    for backend in backends:
        if not backend.capabilities.headers:
            log.warning(
                "bridging %s as configured carries no message ids or headers, so a hub "
                "cannot recognise its own messages coming back and forwards them again; "
                "turn its metadata on (zeromq: zmq_metadata_frame = true)",
                backend.name,
            )
    bridges = []
    for source in backends:
        if not source.capabilities.cross_process:
            continue  # only this hub publishes there
        targets = [backend for backend in backends if backend is not source]
        bridges.append(await source.subscribe(["#"], partial(_forward, targets, hub_id)))
        log.info("bridging %s to %s", source.name, ", ".join(t.name for t in targets))
    return bridges


async def _forward(targets: list[Backend], hub_id: str, message: Message) -> None:
    if ORIGIN_HEADER in message.headers:
        return
    forwarded = Message(
        message.topic,
        headers={**message.headers, ORIGIN_HEADER: hub_id},
        id=message.id,
        timestamp=message.timestamp_s,
        payload=message.payload,
        content_type=message.content_type,
    )
    for target in targets:
        await target.publish(forwarded)
