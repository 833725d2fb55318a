"""The AMQP 1.0 backend's queues, declared over AMQP 0-9-1 (aio-pika) on the same broker.

Each subscription reads a queue ``moksha.amqp1.<uuid>`` of its own, bound to the
exchange with its patterns: RabbitMQ's ``rabbitmq_amqp1_0`` plugin can attach a link
to ``/amq/queue/<name>`` but cannot declare or bind one itself.  Not the plugin's
``/topic/<pattern>`` sources: RabbitMQ 3.10 never deletes their server-named queues
(not on detach, not on close: rabbitmq-server #2588), and they cannot be re-attached
after a reconnection.  These queues are deleted on cancel and close, and by the broker
(``x-expires``) when left unused for a minute (a crashed hub).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import aio_pika

from moksha.errors import BackendError, BackendUnavailable

__all__ = ["QUEUE_EXPIRES_MS", "Queues", "broker_pattern"]

log = logging.getLogger("moksha.hub.backends.amqp1")

QUEUE_EXPIRES_MS = 60_000
"""A subscription's queue, left without a consumer this long, is deleted by the broker."""
_DELETE_TIMEOUT = 5.0


class Queues:
    """Declares, binds and deletes the subscriptions' queues over one robust connection.

    Args:
        url: the broker's AMQP 0-9-1 URL.
        exchange: the exchange the queues are bound to.
        reconnect_delay: seconds between two attempts when the connection is lost.
    """

    def __init__(self, url: str, exchange: str, reconnect_delay: float) -> None:
        self._url = url
        self._exchange = exchange
        self._reconnect_delay = reconnect_delay
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._declared: set[str] = set()

    async def open(self) -> None:
        """Connect (aio-pika reconnects by itself from then on).

        Raises:
            OSError, aio_pika.exceptions.AMQPError: the broker cannot be reached.
        """
        self._connection = await aio_pika.connect_robust(
            self._url, reconnect_interval=self._reconnect_delay
        )

    async def declare(self, name: str, patterns: Sequence[str]) -> None:
        """Declare queue ``name`` (again: harmless) and bind it with ``patterns``.

        Raises:
            BackendUnavailable: not connected.
            BackendError: the broker refused.
        """
        if self._connection is None:
            raise BackendUnavailable("amqp1: not connected for declaring queues")
        try:
            channel = await self._connection.channel()
            async with channel:
                queue = await channel.declare_queue(
                    name, durable=False, arguments={"x-expires": QUEUE_EXPIRES_MS}
                )
                self._declared.add(name)
                for pattern in dict.fromkeys(broker_pattern(p) for p in patterns):
                    await queue.bind(self._exchange, pattern)
        except aio_pika.exceptions.AMQPError as exc:
            raise BackendError(f"amqp1: could not set up a queue for {patterns}: {exc}") from exc

    async def delete(self, name: str) -> None:
        """Delete queue ``name``, best effort: ``x-expires`` deletes it anyway."""
        self._declared.discard(name)
        if self._connection is None or self._connection.is_closed:
            return
        try:
            async with asyncio.timeout(_DELETE_TIMEOUT):
                channel = await self._connection.channel()
                async with channel:
                    await channel.queue_delete(name)
        except Exception as exc:  # best effort, see above
            log.info("amqp1: queue %s left for the broker to expire (%s)", name, exc)

    async def close(self) -> None:
        """Delete every queue declared here, then close the connection."""
        for name in list(self._declared):
            await self.delete(name)
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(aio_pika.exceptions.AMQPError, OSError):
                await connection.close()


def broker_pattern(pattern: str) -> str:
    """``pattern`` as the plugin can bind it: a word with non-ASCII characters becomes ``*``.

    RabbitMQ 3.10's plugin drops the connection on a non-ASCII source address;
    the broader binding is narrowed again by the subscription's own patterns.

    >>> broker_pattern("a.*.事件.#"), broker_pattern("a.b")
    ('a.*.*.#', 'a.b')
    """
    return ".".join(word if word.isascii() else "*" for word in pattern.split("."))
