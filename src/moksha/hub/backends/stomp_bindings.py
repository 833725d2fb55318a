"""STOMP group queues on RabbitMQ that follow the code, through RabbitMQ's AMQP side.

STOMP can add a binding (a SUBSCRIBE to ``/topic/<pattern>`` with
``x-queue-name``) but never remove one, nor list a broker's queues.  RabbitMQ
serves STOMP and AMQP 0-9-1 on the same exchanges and queues, so with
``stomp_amqp_url`` set the STOMP backend applies the AMQP rule to its group
queues ``moksha.stomp.<group>``: the same queue registry, lock and liveness
markers (:mod:`moksha.hub.backends.amqp_bindings`), the exchange being
``amq.topic`` (what ``/topic/`` destinations use).  The bindings are made
before the SUBSCRIBE frames, which then only bind what is already bound.

Without ``stomp_amqp_url`` (or with a ``stomp_destination_prefix`` other than
``/topic/``) stale bindings stay, and what arrives through them is
dead-lettered by the subscription (:mod:`moksha.hub.backends.stomp_subscription`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aio_pika
from aio_pika.abc import AbstractRobustChannel
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from yarl import URL

from moksha.errors import BackendError
from moksha.hub.backends.amqp_bindings import follow_code, inventory, leave, remove
from moksha.hub.backends.amqp_registry import CONNECT_TIMEOUT, live_marker
from moksha.hub.backends.base import DurableQueue
from moksha.hub.backends.stomp_subscription import GROUP_QUEUE_PREFIX

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["Applied", "StompQueues"]

log = logging.getLogger(__name__)

EXCHANGE = "amq.topic"  # where RabbitMQ's /topic/ destinations route


@dataclass(frozen=True, slots=True)
class Applied:
    """What :meth:`StompQueues.follow` did.

    Attributes:
        marker: the subscription's liveness marker.
        others: the patterns of the consumer's other live releases.
    """

    marker: str
    others: tuple[str, ...]


class StompQueues:
    """The group queues of one STOMP backend, kept in step through AMQP.

    Args:
        config: the backend's configuration; ``stomp_amqp_url`` must be set.
    """

    def __init__(self, config: Config) -> None:
        assert config.stomp_amqp_url is not None
        self._url = config.stomp_amqp_url
        self._prefix = config.amqp_queue_prefix
        self._usable = config.stomp_destination_prefix == "/topic/"
        self._connection: aio_pika.RobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None

    async def open(self) -> None:
        """Connect (markers live on this connection); a failure is logged, not raised."""
        if not self._usable:
            log.warning(
                "stomp: stomp_amqp_url is ignored: stale bindings can be removed only for "
                "/topic/ destinations (stomp_destination_prefix)"
            )
            return
        connection = aio_pika.RobustConnection(URL(self._url))
        try:
            await connection.connect(timeout=CONNECT_TIMEOUT)
            self._channel = await connection.channel()
        except CONNECTION_EXCEPTIONS as exc:
            await connection.close()
            log.warning(
                "stomp: cannot reach stomp_amqp_url (%s); STOMP group queues keep stale "
                "bindings this time",
                exc,
            )
            return
        self._connection = connection

    async def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await connection.close()

    async def follow(self, group: str, patterns: Sequence[str]) -> Applied | None:
        """Bind the group's queue to ``patterns`` (and other live releases').

        Returns:
            The liveness marker to hand to :meth:`leave` and the other live
            releases' patterns, or None when nothing was done.
        """
        channel = self._channel
        if channel is None:
            return None
        marker = live_marker(self._prefix)
        queue = GROUP_QUEUE_PREFIX + group
        try:
            await channel.declare_queue(marker, exclusive=True)
            applied = await follow_code(
                self._url,
                self._prefix,
                exchange=EXCHANGE,
                queue=queue,
                group=group,
                patterns=patterns,
                marker=marker,
            )
        except (BackendError, *CONNECTION_EXCEPTIONS) as exc:
            log.warning("stomp: could not apply the bindings of %s (%s)", queue, exc)
            return None
        return Applied(marker, applied.others)

    async def leave(self, group: str, marker: str) -> None:
        """A group subscription stops cleanly (see :func:`~.amqp_bindings.leave`)."""
        channel = self._channel
        try:
            if channel is not None:
                await channel.queue_delete(marker)
            await leave(self._url, self._prefix, queue=GROUP_QUEUE_PREFIX + group, marker=marker)
        except (BackendError, *CONNECTION_EXCEPTIONS) as exc:
            log.warning("stomp: could not update the queue registry (%s)", exc)

    async def durable_queues(self) -> list[DurableQueue]:
        """The registry's STOMP group queues."""
        try:
            queues = await inventory(self._url, self._prefix)
        except CONNECTION_EXCEPTIONS as exc:
            raise BackendError(f"stomp: cannot reach stomp_amqp_url ({exc})") from exc
        return [q for q in queues if q.name == GROUP_QUEUE_PREFIX + q.group]

    async def delete(self, name: str) -> None:
        """Delete a STOMP group queue of the registry, and its dead letters.

        Raises:
            BackendError: not a STOMP group queue of the registry, or in use.
        """
        if not name.startswith(GROUP_QUEUE_PREFIX):
            raise BackendError(f"stomp: {name!r} is not a STOMP group queue")
        try:
            await remove(self._url, self._prefix, name)
        except CONNECTION_EXCEPTIONS as exc:
            raise BackendError(f"stomp: cannot reach stomp_amqp_url ({exc})") from exc
