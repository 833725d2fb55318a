"""JetStream for Moksha's consumer groups: one stream, one durable pull consumer per group.

The stream (``nats_stream``) holds the subjects of ``nats_stream_subjects``
with interest retention (a message stays until every group's consumer acked
it, at most ``nats_stream_max_age``).  A group's consumer (durable name
``moksha_<group>``, its group and patterns in the description) filters on
one subject covering all of its patterns (NATS 2.9 consumers take one
filter); what the cover lets through beyond the patterns is acknowledged and
skipped.  Deliveries are acknowledged once the handler returned; when it
raised, the message is nak'ed (delivered again after
``moksha.retry_delay``), and after ``nats_max_deliver`` deliveries it goes to
the dead-letter topic and is terminated.

The hub's retries go back to their group alone, attempt count and all: the
stream also holds ``_moksha_retry.<stream>.>``, and each group has a second
consumer (``<durable>__retry``) on its own ``_moksha_retry.<stream>.<durable>``
subject, fetched by the same workers; the original topic travels in a header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy
from nats.js.errors import NotFoundError

from moksha.errors import BackendError
from moksha.hub.backends.base import (
    DEAD_LETTER_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DurableQueue,
    Handler,
    Subscription,
    deliver,
)
from moksha.hub.backends.nats_pull import Puller
from moksha.hub.backends.nats_wire import cover, decode, encode
from moksha.message import Message
from moksha.topics import TopicRouter

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["DURABLE_PREFIX", "JetStreamGroup", "ensure_stream", "list_groups"]

log = logging.getLogger("moksha.hub.backends.nats")

DURABLE_PREFIX = "moksha_"
RETRY_SUFFIX = "__retry"
_FETCH_WAIT = 0.5
_ACKS_PER_WRITE = 16
_ACK_DELAY = 0.05


def retry_space(stream: str) -> str:
    """The subjects, kept in ``stream``, that carry retries back to one group."""
    return f"_moksha_retry.{stream}.>"


def retry_subject(stream: str, group: str) -> str:
    """The subject carrying retries back to ``group`` alone."""
    return f"_moksha_retry.{stream}.{durable_name(group)}"


def durable_name(group: str) -> str:
    """A JetStream durable name for ``group`` (no dots, wildcards or spaces)."""
    return DURABLE_PREFIX + re.sub(r"[^A-Za-z0-9_:-]", "_", group)


async def ensure_stream(js: JetStreamContext, config: Config) -> None:
    """Create the stream, or bring its subjects in line with the config.

    Raises:
        BackendError: the server refused (e.g. another stream holds one of the subjects).
    """
    subjects = [*config.nats_stream_subjects, retry_space(config.nats_stream)]
    try:
        try:
            info = await js.stream_info(config.nats_stream)
        except NotFoundError:
            await js.add_stream(
                name=config.nats_stream,
                subjects=subjects,
                retention=RetentionPolicy.INTEREST,
                max_age=config.nats_stream_max_age,
            )
            return
        if sorted(info.config.subjects or []) != sorted(subjects):
            info.config.subjects = subjects
            await js.update_stream(info.config)
    except Exception as exc:
        if isinstance(exc, BackendError):
            raise
        raise BackendError(
            f"JetStream stream {config.nats_stream!r} on subjects {subjects}: {exc}. "
            "Check nats_stream and nats_stream_subjects (a subject may belong to one stream only)."
        ) from exc


async def list_groups(js: JetStreamContext, stream: str) -> list[DurableQueue]:
    """The consumer groups' durable consumers on ``stream``."""
    found = []
    for info in await js.consumers_info(stream):
        name = info.config.durable_name or info.name
        if not name.startswith(DURABLE_PREFIX) or name.endswith(RETRY_SUFFIX):
            continue
        try:
            about: dict[str, Any] = json.loads(info.config.description or "{}")
        except ValueError:
            about = {}
        found.append(
            DurableQueue(
                name=name,
                group=str(about.get("group", name)),
                depth=(info.num_pending or 0) + (info.num_ack_pending or 0),
                consumers=1 if info.num_waiting else 0,
                patterns=tuple(about.get("patterns", ())),
            )
        )
    return found


class JetStreamGroup(Subscription):
    """One consumer group's durable pull consumer, its fetcher and its workers."""

    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        config: Config,
        patterns: Sequence[str],
        handler: Handler,
        group: str,
        concurrency: int,
    ) -> None:
        self.patterns = tuple(patterns)
        self._nc = nc
        self._js = js
        self._config = config
        self._handler = handler
        self._group = group
        self._concurrency = max(1, concurrency)
        self.durable = durable_name(group)
        # Bounded by the pull requests (at most _limit a consumer, two consumers): see _room.
        self._limit = max(config.nats_inflight, concurrency, 2)
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._low = asyncio.Event()
        self._acks: list[Msg] = []
        self._wanted: TopicRouter[bool] = TopicRouter()  # caches each topic's answer
        for pattern in self.patterns:
            self._wanted.add(pattern, True)
        self._ack_timer: asyncio.TimerHandle | None = None
        self._ack_task: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pullers: list[Puller] = []

    async def start(self) -> None:
        config = self._config
        wanted = ConsumerConfig(
            durable_name=self.durable,
            description=json.dumps({"group": self._group, "patterns": list(self.patterns)}),
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW,
            filter_subject=cover(self.patterns),
            max_deliver=config.nats_max_deliver,
            ack_wait=config.nats_ack_wait,
            max_ack_pending=max(config.nats_inflight, self._concurrency),
        )
        retries = ConsumerConfig(
            durable_name=self.durable + RETRY_SUFFIX,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=retry_subject(config.nats_stream, self._group),
            max_deliver=config.nats_max_deliver,
            ack_wait=config.nats_ack_wait,
            max_ack_pending=max(config.nats_inflight, self._concurrency),
        )
        for consumer in (wanted, retries):
            try:
                await self._js.add_consumer(config.nats_stream, consumer)
            except Exception as exc:
                # An existing consumer whose filter the server will not change (NATS 2.9):
                # keep it; the patterns are applied here all the same.
                log.warning("JetStream consumer %s kept as it was (%s)", consumer.durable_name, exc)
        self._pullers = [
            Puller(
                self._nc,
                config.nats_stream,
                name,
                self._queue.put_nowait,
                self._room,
                expires=_FETCH_WAIT,
                pause=config.reconnect_delay,
            )
            for name in (self.durable, self.durable + RETRY_SUFFIX)
        ]
        for puller in self._pullers:
            await puller.start()
        self._tasks = [
            asyncio.create_task(self._work(), name=f"nats {self.durable} #{n}")
            for n in range(self._concurrency)
        ]

    async def _room(self) -> int:
        """Wait until the local queue is half empty; how many more to ask for."""
        half = self._limit // 2
        while self._queue.qsize() > half:
            self._low.clear()
            await self._low.wait()
        return self._limit - self._queue.qsize()

    async def _work(self) -> None:
        while True:
            msg = await self._queue.get()
            if self._queue.qsize() <= self._limit // 2:
                self._low.set()
            try:
                await self._settle(msg)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await msg.nak()  # a hub stopping: at once to whoever runs the group
                raise

    async def _settle(self, msg: Msg) -> None:
        message = decode(msg.subject, msg.data, msg.headers)
        retry = msg.subject.startswith("_moksha_retry.")
        if not retry and not self._wanted.match(message.topic):
            await self._ack(msg)  # let through by the consumer's broader filter
            return
        try:
            await deliver(self._handler, message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delivered = msg.metadata.num_delivered or 1
            if delivered >= self._config.nats_max_deliver:
                await self._dead_letter(message, delivered, exc)
                await msg.term()
            else:
                await msg.nak(delay=self._config.retry_delay)
            return
        await self._ack(msg)

    async def _ack(self, msg: Msg) -> None:
        """Acknowledge ``msg``; while more wait here, a few at a time in one write.

        An ack held back goes out at the latest after ``_ACK_DELAY`` (a worker may
        be inside a long handler meanwhile), far inside ``nats_ack_wait``.
        """
        self._acks.append(msg)
        if len(self._acks) >= _ACKS_PER_WRITE or self._queue.empty():
            await self._send_acks()
        elif self._ack_timer is None:
            self._ack_timer = asyncio.get_running_loop().call_later(_ACK_DELAY, self._acks_due)

    def _acks_due(self) -> None:
        self._ack_timer = None
        if self._acks and (self._ack_task is None or self._ack_task.done()):
            self._ack_task = asyncio.ensure_future(self._send_acks())

    async def _send_acks(self) -> None:
        acks, self._acks = self._acks, []
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        for msg in acks:  # no await in between yields: nats-py writes them together
            await msg.ack()

    async def _dead_letter(self, message: Message, delivered: int, error: Exception) -> None:
        reason = (
            f"delivered {delivered} times (nats_max_deliver) to {self._group} and failed each "
            f"time; last error {type(error).__name__}: {error}"
        )
        letter = Message(
            self._config.dead_letter_topic.format(topic=message.topic),
            headers={
                **message.headers,
                DEAD_LETTER_HEADER: message.topic,
                DEAD_LETTER_REASON_HEADER: reason[:500],
            },
            payload=message.payload,
            content_type=message.content_type,
        )
        subject, payload, headers = encode(letter)
        await self._nc.publish(subject, payload, headers=headers)
        log.warning("JetStream message %s of %s dead-lettered: %s", message.id, self._group, reason)

    async def waiting(self) -> int | None:
        info = await self._js.consumer_info(self._config.nats_stream, self.durable)
        return (info.num_pending or 0) + (info.num_ack_pending or 0)

    async def cancel(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._ack_task is not None:
            with contextlib.suppress(Exception):
                await self._ack_task
        with contextlib.suppress(Exception):
            await self._send_acks()  # handled: never to be delivered again
        # Our pull requests must end before the naks below: the server would
        # otherwise redeliver to them, and a delivery to a gone hub waits nats_ack_wait.
        # What was on its way still lands in the queue, and goes back with the rest.
        pullers, self._pullers = self._pullers, []
        for puller in pullers:
            await puller.stop()
        while not self._queue.empty():  # fetched, never started: back at once
            with contextlib.suppress(Exception):
                await self._queue.get_nowait().nak()
