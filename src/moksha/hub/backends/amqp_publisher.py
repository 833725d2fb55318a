"""Confirmed publishing on one AMQP channel, in batches, through aiormq.

Why not aio-pika's ``Exchange.publish``: per message it builds an
``aio_pika.Message``, converts it to properties, takes the channel's lock and
holds it until its frames are written to the socket, so the publishes a hub
starts together go out one loop turn each, and the publisher, not the broker,
sets the pace (issue 15: Moksha published at raw aio-pika's rate).

:class:`ConfirmedPublisher` keeps aio-pika's robust channel (it reopens the
channel after a reconnection) and writes on the aiormq channel under it:

* :meth:`~ConfirmedPublisher.publish` builds the message's pamqp properties,
  queues it and returns a future, without waiting;
* one writer task takes everything queued in one loop turn, and, holding the
  channel's lock (the one ``basic_publish`` takes, so the delivery tags and
  the frames stay in the same order), gives each message the channel's next
  delivery tag, registers a confirmation future where aiormq resolves the
  broker's ``basic.ack``/``basic.nack`` (``multiple`` too), and writes all their
  frames at once; before the next batch it waits until these are handed to
  the socket, so a slow socket holds the publishers back instead of a buffer
  growing;
* the future resolves when the broker confirmed the message; a nack raises
  aiormq's ``DeliveryError``; a channel or connection lost raises the error
  aiormq rejects the channel's pending confirmations with (the caller may
  publish again once reconnected: at least once).

Order: publishes reach the broker in the order :meth:`publish` was called.
A publish whose caller gave up (its future cancelled) before it was written is
not sent.  :meth:`close` fails whatever was not written yet, so nobody waits
on it.  Only this class publishes on its channel.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, cast

import aiormq
import aiormq.abc
from aio_pika.abc import AbstractChannel
from aiormq.exceptions import ChannelInvalidStateError
from pamqp import commands
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

__all__ = ["ConfirmedPublisher"]


@dataclass(slots=True)
class _Queued:
    publish: commands.Basic.Publish
    header: ContentHeader
    body: bytes
    confirmed: asyncio.Future[None]


class ConfirmedPublisher:
    """Publishes with publisher confirms on ``channel`` (see the module docstring).

    Args:
        channel: an aio-pika channel opened with ``publisher_confirms=True``,
            used for publishing by this object only.
    """

    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel
        self._queued: list[_Queued] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        props: commands.Basic.Properties,
    ) -> asyncio.Future[None]:
        """Queue one message; the future resolves once the broker confirmed it.

        Raises (through the future):
            aiormq.exceptions.DeliveryError: the broker nacked it.
            aiormq.exceptions.ChannelInvalidStateError: the channel is closed,
                or this publisher was closed before the message was written.
            Exception: what aiormq rejects the channel's confirmations with
                when the channel or the connection is lost.
        """
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._closed:
            confirmed.set_exception(ChannelInvalidStateError("the publisher is closed"))
            return confirmed
        self._queued.append(
            _Queued(
                commands.Basic.Publish(exchange=exchange, routing_key=routing_key),
                ContentHeader(body_size=len(body), properties=props),
                body,
                confirmed,
            )
        )
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="moksha-amqp-publisher")
        return confirmed

    async def close(self) -> None:
        """Stop writing; what was queued and not yet written fails (nothing waits forever).

        Publishes already written keep waiting for their confirm, or for the
        channel's close to fail them.
        """
        self._closed = True
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        self._fail(self._take(), ChannelInvalidStateError("the publisher was closed"))

    def _take(self) -> list[_Queued]:
        queued, self._queued = self._queued, []
        return queued

    async def _write(self) -> None:
        try:
            while batch := self._take():
                try:
                    # aio-pika's underlay is aiormq's Channel, whose publishing state we share.
                    channel = cast(aiormq.Channel, await self.channel.get_underlay_channel())
                    written = await self._write_batch(channel, batch)
                except Exception as exc:
                    self._fail(batch, exc)
                    continue
                except BaseException:
                    self._fail(batch, ChannelInvalidStateError("the publisher was closed"))
                    self._fail(self._take(), ChannelInvalidStateError("the publisher was closed"))
                    raise
                # Backpressure: the next batch waits until this one reached the socket.
                with contextlib.suppress(Exception):
                    await written
        finally:
            if self._writer is asyncio.current_task():
                self._writer = None

    async def _write_batch(
        self, channel: aiormq.Channel, batch: list[_Queued]
    ) -> asyncio.Future[None]:
        """Write ``batch`` as one frame buffer; returns the future of its drain."""
        written: asyncio.Future[None] = channel.create_future()
        async with channel.lock:
            first = channel.delivery_tag
            frames: list[Any] = []
            limit = channel.max_content_size
            for queued in batch:
                if queued.confirmed.done():  # its caller gave up: not sent
                    continue
                channel.delivery_tag += 1
                confirmation = channel.create_future()
                channel.confirmations[channel.delivery_tag] = confirmation
                confirmation.add_done_callback(_settle(queued.confirmed))
                frames += (queued.publish, queued.header)
                body = queued.body
                frames += (ContentBody(body[i : i + limit]) for i in range(0, len(body), limit))
            if not frames:
                written.set_result(None)
                return written
            try:
                await channel.write_queue.put(
                    aiormq.abc.ChannelFrame.marshall(
                        channel_number=channel.number, frames=frames, drain_future=written
                    )
                )
            except BaseException:
                # Not written: the broker never saw these tags; reuse them.
                for tag in range(first + 1, channel.delivery_tag + 1):
                    if tag in channel.confirmations:
                        channel.confirmations.pop(tag).cancel()
                channel.delivery_tag = first
                raise
        return written

    @staticmethod
    def _fail(batch: list[_Queued], error: BaseException) -> None:
        for queued in batch:
            if not queued.confirmed.done():
                queued.confirmed.set_exception(error)


def _settle(confirmed: asyncio.Future[None]) -> Any:
    """A done callback passing aiormq's confirmation on to the caller's future."""

    def settle(confirmation: asyncio.Future[Any]) -> None:
        if confirmed.done():
            return
        if confirmation.cancelled():
            confirmed.set_exception(ChannelInvalidStateError("the publish was not written"))
        elif (error := confirmation.exception()) is not None:
            # A channel closed on purpose rejects its futures with a CancelledError (or a
            # bare Exception): for the caller that is a lost channel, not its own cancellation.
            if isinstance(error, asyncio.CancelledError) or type(error) is Exception:
                error = ChannelInvalidStateError("the channel closed before the broker confirmed")
            confirmed.set_exception(error)
        else:
            confirmed.set_result(None)

    return settle
