"""The queue registry: what Moksha applied to its durable AMQP queues, kept on the broker.

AMQP 0-9-1 cannot list a queue's bindings, nor a broker's queues, so Moksha
records them itself, over AMQP alone (no management plugin):

* the registry is the durable queue ``<amqp_queue_prefix>:queues``, one
  persistent JSON :class:`QueueRecord` per durable queue Moksha created.  It is
  read with ``basic.get`` and rewritten (new record published with a confirm,
  then the old one acked), so a hub dying half-way leaves two records of one
  queue, and the one with the higher ``serial`` wins;
* it is read and written only under a lock, the exclusive queue
  ``<amqp_queue_prefix>:queues.lock`` declared on a short-lived connection of
  its own: the broker lets one connection hold it and removes it when that
  connection dies, so a crashed hub never leaves it taken;
* a running durable subscription holds a liveness marker, the exclusive queue
  ``<amqp_queue_prefix>:live.<uuid>``: a passive declare of it from another
  connection answers ``RESOURCE_LOCKED`` while its hub runs, ``NOT_FOUND``
  once it is gone (:meth:`Registry.alive`).

What is done with the records is :mod:`moksha.hub.backends.amqp_bindings`'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aiormq.exceptions import ChannelLockedResource, ChannelNotFoundEntity

from moksha.errors import BackendError

__all__ = [
    "CONNECT_TIMEOUT",
    "LOCK_TIMEOUT",
    "QueueRecord",
    "Registry",
    "dead_letter_queue",
    "live_marker",
    "registry_queue",
]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
LOCK_TIMEOUT = 15.0  # hubs starting together queue up for the lock; each holds it ~10 ms
_FIRST_PAUSE = 0.02  # between two attempts at the lock, doubling up to _LONGEST_PAUSE
_LONGEST_PAUSE = 0.5


def registry_queue(prefix: str) -> str:
    """The name of the registry queue for ``amqp_queue_prefix`` ``prefix``."""
    return f"{prefix}:queues"


def live_marker(prefix: str) -> str:
    """A new liveness-marker name (an exclusive queue held while a subscription runs)."""
    return f"{prefix}:live.{uuid.uuid4().hex}"


def dead_letter_queue(queue: str) -> str:
    """Where messages of ``queue`` that matched only removed bindings go."""
    return f"{queue}:dead-letter"


@dataclass(frozen=True, slots=True)
class QueueRecord:
    """What Moksha applied to one durable queue.

    Attributes:
        queue: the queue's name.
        group: the consumer group (a consumer class's dotted path) it serves.
        exchange: the exchange it is bound to.
        bindings: the routing keys bound, sorted.
        releases: liveness marker → the patterns of the subscription holding it.
        serial: grows by one at each rewrite; the highest wins.
    """

    queue: str
    group: str
    exchange: str
    bindings: tuple[str, ...] = ()
    releases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    serial: int = 0

    def as_json(self) -> bytes:
        data = {
            "queue": self.queue,
            "group": self.group,
            "exchange": self.exchange,
            "bindings": list(self.bindings),
            "releases": {marker: list(p) for marker, p in self.releases.items()},
            "serial": self.serial,
        }
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, body: bytes) -> QueueRecord:
        """Parse a registry message.

        Raises:
            ValueError: not a record (a message some other program put there).
        """
        try:
            data: Any = json.loads(body)
            return cls(
                queue=str(data["queue"]),
                group=str(data["group"]),
                exchange=str(data["exchange"]),
                bindings=tuple(sorted(str(b) for b in data["bindings"])),
                releases={str(m): tuple(map(str, p)) for m, p in data["releases"].items()},
                serial=int(data["serial"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a queue record: {body[:80]!r}") from exc


class Registry:
    """The records, as read under the lock; changes are written back by :meth:`save`.

    Made by :meth:`open`; usable only inside it.
    """

    def __init__(self, connection: AbstractConnection, prefix: str) -> None:
        self._connection = connection
        self._prefix = prefix
        self._channel: AbstractChannel | None = None
        self.records: dict[str, QueueRecord] = {}
        self._held: dict[str, list[AbstractIncomingMessage]] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, url: str, prefix: str) -> AsyncIterator[Registry]:
        """Connect, take the lock, read every record; release all on leaving.

        Args:
            url: the broker's AMQP URL.
            prefix: ``amqp_queue_prefix`` (names the registry and the lock).

        Raises:
            BackendError: the lock stayed taken for ``LOCK_TIMEOUT`` seconds.
        """
        connection = await aio_pika.connect(url, timeout=CONNECT_TIMEOUT)
        async with connection:
            await _take_lock(connection, f"{registry_queue(prefix)}.lock")
            registry = cls(connection, prefix)
            await registry._read()
            yield registry
            # Records not saved go back to the registry queue with the channel.

    async def _read(self) -> None:
        channel = await self._connection.channel()
        self._channel = channel
        queue = await channel.declare_queue(registry_queue(self._prefix), durable=True)
        waiting = queue.declaration_result.message_count or 0
        for _ in range(waiting):  # under the lock nobody else adds or takes any
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            try:
                record = QueueRecord.from_json(message.body)
            except ValueError as exc:
                log.warning("amqp: %s in %s; left there", exc, registry_queue(self._prefix))
                continue
            self._held.setdefault(record.queue, []).append(message)
            known = self.records.get(record.queue)
            if known is None or record.serial > known.serial:
                self.records[record.queue] = record

    async def alive(self, marker: str) -> bool:
        """Whether the subscription holding liveness marker ``marker`` still runs."""
        channel = await self._connection.channel()
        try:
            await channel.declare_queue(marker, passive=True)
        except ChannelLockedResource:
            return True  # exclusive to the connection of a running hub
        except ChannelNotFoundEntity:
            return False
        with contextlib.suppress(Exception):
            await channel.close()
        return True  # not exclusive any more: someone else's queue, keep it

    async def live_releases(self, record: QueueRecord) -> dict[str, tuple[str, ...]]:
        """The releases of ``record`` whose hubs still run."""
        return {m: p for m, p in record.releases.items() if await self.alive(m)}

    async def bind(self, record: QueueRecord, target: Iterable[str]) -> QueueRecord:
        """Make ``record``'s queue bound to exactly ``target``; return the record to save."""
        wanted = tuple(sorted(set(target)))
        channel = await self._connection.channel()
        queue = await channel.declare_queue(record.queue, passive=True)
        for key in wanted:  # all of them: one unbound by hand comes back
            await queue.bind(record.exchange, routing_key=key)
        for key in record.bindings:
            if key not in wanted:
                await queue.unbind(record.exchange, routing_key=key)
                log.info("amqp: removed the stale binding %r of queue %s", key, record.queue)
        await channel.close()
        return replace(record, bindings=wanted)

    async def save(self, record: QueueRecord | None, queue: str) -> None:
        """Replace the record of ``queue`` by ``record`` (None: forget the queue)."""
        assert self._channel is not None
        if record is not None:
            record = replace(record, serial=self._latest_serial(queue) + 1)
            confirming = await self._connection.channel(publisher_confirms=True)
            await confirming.default_exchange.publish(
                aio_pika.Message(
                    record.as_json(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=registry_queue(self._prefix),
            )
            await confirming.close()
            self.records[queue] = record
        else:
            self.records.pop(queue, None)
        for message in self._held.pop(queue, []):
            await message.ack()

    def _latest_serial(self, queue: str) -> int:
        known = self.records.get(queue)
        return known.serial if known is not None else 0

    async def queue_state(self, queue: str) -> tuple[int, int] | None:
        """``(messages ready, consumers)`` of ``queue``, or None when it does not exist."""
        channel = await self._connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except ChannelNotFoundEntity:
            return None
        result = declared.declaration_result
        await channel.close()
        return result.message_count or 0, result.consumer_count or 0

    async def ensure_queue(self, queue: str) -> bool:
        """Declare the durable ``queue`` unless it exists; whether it existed."""
        if await self.queue_state(queue) is not None:
            return True
        channel = await self._connection.channel()
        await channel.declare_queue(queue, durable=True)
        await channel.close()
        return False

    async def delete(self, queue: str) -> None:
        """Delete ``queue`` and its dead letters, and forget its record."""
        channel = await self._connection.channel()
        await channel.queue_delete(queue)
        await channel.queue_delete(dead_letter_queue(queue))
        await channel.close()
        await self.save(None, queue)


async def _take_lock(connection: AbstractConnection, lock: str) -> None:
    """Declare the exclusive lock queue, waiting while another connection holds it."""
    pause = _FIRST_PAUSE
    try:
        async with asyncio.timeout(LOCK_TIMEOUT):
            while True:  # bounded by the timeout
                channel = await connection.channel()
                try:
                    await channel.declare_queue(lock, exclusive=True)
                    return  # held until this connection closes
                except ChannelLockedResource:
                    pass  # the broker closed the channel
                await asyncio.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE)
    except TimeoutError:
        raise BackendError(
            f"amqp: the queue registry's lock {lock!r} stayed taken for {LOCK_TIMEOUT:g}s; "
            "another hub may be stuck: restart it, or delete the queue"
        ) from None
