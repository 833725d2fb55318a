"""Pull requests of one JetStream durable consumer, answered on an inbox of our own.

nats-py's ``PullSubscription.fetch`` waits for each message of a batch with a
task, a ``wait_for`` and a uuid of its own; on a hub draining a backlog that
cost as much as the rest of the delivery.  A :class:`Puller` speaks the same
protocol (a ``$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`` request for a batch,
with an expiry, answered on an inbox) through nats-py's public ``subscribe``
with a callback, which hands each message on as it arrives.

A request ends when its batch arrived or when the server answers with a
status (408 expired, 409 a conflict such as the consumer being deleted); a
request whose answer never came (a connection lost meanwhile) is given up
after its expiry and a margin, and asked again.  How many messages the server
hands out unacknowledged stays bounded by the consumer's ``max_ack_pending``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

__all__ = ["Puller"]

log = logging.getLogger("moksha.hub.backends.nats")

_STATUS = "Status"
_HEARTBEAT = "100"
_CONFLICT = "409"
_MARGIN = 1.0  # seconds past a request's expiry before it counts as lost


class Puller:
    """Keeps one durable pull consumer's messages coming, a batch at a time.

    Args:
        nc: the connection.
        stream: the stream's name.
        durable: the durable consumer's name.
        arrived: called with each message the server delivered (not statuses).
        room: waits until more messages are wanted, returns how many.
        expires: seconds a request waits on the server for its batch to fill.
        pause: seconds to wait after a conflict or a failed request.
    """

    def __init__(
        self,
        nc: NATS,
        stream: str,
        durable: str,
        arrived: Callable[[Msg], None],
        room: Callable[[], Awaitable[int]],
        *,
        expires: float,
        pause: float,
    ) -> None:
        self.durable = durable
        self._nc = nc
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._arrived = arrived
        self._room = room
        self._expires = expires
        self._pause = pause
        self._inbox = nc.new_inbox()
        self._asked = 0
        self._got = 0
        self._answered = asyncio.Event()
        self._conflict = False
        self._sub: NatsSubscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._receive)
        self._task = asyncio.create_task(self._ask(), name=f"nats {self.durable} pull")

    async def _receive(self, msg: Msg) -> None:
        status = msg.headers.get(_STATUS) if msg.headers and not msg.reply else None
        if status is None:
            self._got += 1
            if self._got >= self._asked:
                self._answered.set()
            self._arrived(msg)
            return
        if status == _HEARTBEAT:
            return
        if status == _CONFLICT:
            log.debug("JetStream pull for %s: %s", self.durable, msg.headers)
            self._conflict = True
        self._answered.set()  # 408: expired (a request that was not filled), 404, 409

    async def _ask(self) -> None:
        expires_ns = int(self._expires * 1_000_000_000)
        while True:
            wanted = await self._room()
            self._asked, self._got, self._conflict = wanted, 0, False
            self._answered.clear()
            request = json.dumps({"batch": wanted, "expires": expires_ns}).encode()
            try:
                await self._nc.publish(self._next, request, reply=self._inbox)
            except Exception as exc:  # a lost connection: nats-py reconnects, we wait
                log.debug("JetStream pull for %s failed (%s); again", self.durable, exc)
                await asyncio.sleep(self._pause)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._expires + _MARGIN):
                    await self._answered.wait()
            if self._conflict:
                await asyncio.sleep(self._pause)

    async def stop(self) -> None:
        """Ask for no more, and hand on what is on its way (to be given back by the caller)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        sub, self._sub = self._sub, None
        if sub is None:
            return
        try:
            async with asyncio.timeout(self._expires + _MARGIN):
                await sub.drain()  # type: ignore[no-untyped-call]  # ends our requests too
        except Exception as exc:
            log.debug("JetStream pull inbox for %s not drained (%s)", self.durable, exc)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
