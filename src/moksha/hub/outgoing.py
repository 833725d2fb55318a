"""A hub's outgoing queue: what ``send_message`` and plugins publish, sent in order by one task.

Plain Python (``hub.send_message`` from a script, a WSGI app, a consumer's or
producer's worker thread) must not pay a round trip to the hub's event loop
per message, and the hub must not start a task per publish.  So every such
publish is put on one bounded FIFO per hub, and one task on the hub's loop
takes the messages off it in order and hands them to the backends.

Policy when it is full (``moksha.outgoing_queue`` messages): a caller on
another thread *waits for room*, at most ``moksha.publish_timeout`` seconds,
then gets :class:`~moksha.errors.BackendUnavailable`; a caller on the hub's
own loop (a callback, an ``async def`` consumer calling ``send_message``)
cannot wait, so its message is queued past the bound and the consumer runner
waits for room before handing that consumer its next message.  Nothing is
dropped silently: a message that fails to send is logged with its topic and
id (and reported to a plain-Python caller, see :class:`Outgoing`); what is
still queued when the hub stops after ``moksha.shutdown_timeout`` is counted
and logged.

The queue is a :class:`collections.deque`: ``append`` and ``popleft`` are
atomic under the GIL, so the fast path takes no lock; the task sleeps only
while the queue is empty and a putter wakes it only then.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

from moksha.errors import BackendUnavailable, HubClosed
from moksha.message import Message

__all__ = ["Outgoing", "loop_publisher"]

log = logging.getLogger("moksha.hub")

# A queued entry: the message, whether its failure is reported to the plain-Python
# caller, and a future its caller waits on (``wait=True``, a flush marker), or None.
_Entry = tuple[Message | None, bool, "concurrent.futures.Future[None] | None"]

loop_publisher: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "moksha_loop_publisher", default=None
)
"""Set by a consumer runner's task: counts what that consumer queues from the loop."""

# How often a thread waiting for room looks again on its own (a safety net: it is woken).
_ROOM_POLL = 0.5


class Outgoing:
    """A bounded FIFO of messages to publish and the task that sends them (module docstring).

    Args:
        size: the bound (``moksha.outgoing_queue``).
        send: publishes one message to every backend; returns None when done at
            once, else an awaitable.
        loop: the hub's event loop.
        room_timeout: the longest a thread waits for room (``moksha.publish_timeout``).
        window: how many publishes may await their backend at once; more than 1
            only for backends that keep the order of publishes started in order
            (``Capabilities.ordered_publishes``: a broker's confirms awaited apart).

    Attributes:
        failed: how many messages could not be sent.
        dropped: how many were still queued when the hub stopped.
    """

    def __init__(
        self,
        size: int,
        send: Callable[[Message], Awaitable[None] | None],
        loop: asyncio.AbstractEventLoop,
        room_timeout: float,
        window: int = 1,
    ) -> None:
        self.size = size
        self._send = send
        self._loop = loop
        self._room_timeout = room_timeout
        self._items: deque[_Entry] = deque()
        self._idle = False  # the task sleeps: the next putter wakes it
        self._work: asyncio.Future[None] | None = None
        self._room = threading.Event()
        self._room_wanted = False
        self._loop_room: list[asyncio.Future[None]] = []
        self._window = window
        # Taken off the queue, not yet sent (an ordered set); their tasks when windowed.
        self._in_flight: dict[int, Message] = {}
        self._group: asyncio.TaskGroup | None = None
        self._freed: asyncio.Future[None] | None = None
        self._error: BaseException | None = None  # the first failure not yet reported
        self._unreported = 0
        self.failed = 0
        self.dropped = 0
        self.closed = False  # the hub stopped: nothing more is queued

    def __len__(self) -> int:
        return len(self._items)

    @property
    def failures_pending(self) -> bool:
        """Whether a failure waits to be reported by :meth:`raise_failure`."""
        return self._error is not None

    @property
    def full(self) -> bool:
        """Whether the queue holds its bound (or more, from the loop)."""
        return len(self._items) >= self.size

    # -- putting --------------------------------------------------------------

    def put(self, message: Message, *, report: bool = False) -> None:
        """Queue ``message`` from a thread other than the loop's, waiting for room.

        Args:
            message: what to publish.
            report: a failure to send it raises on the caller's next call
                (:meth:`raise_failure`) besides being logged.

        Raises:
            BackendUnavailable: no room within ``room_timeout``.
            HubClosed: the hub stopped meanwhile.
        """
        if len(self._items) >= self.size or self.closed:
            self._wait_for_room(message.topic)
        self._items.append((message, report, None))
        if self._idle:
            self._wake()

    def put_nowait(self, message: Message) -> None:
        """Queue ``message`` from the hub's loop: past the bound if need be (see the module).

        Raises:
            HubClosed: the hub stopped.
        """
        if self.closed:
            self._refuse(message.topic)
        counter = loop_publisher.get()
        if counter is not None:
            counter[0] += 1
        self._items.append((message, False, None))
        if self._idle:
            self._wake_here()

    def put_waited(self, message: Message | None) -> concurrent.futures.Future[None]:
        """Queue ``message`` (or, with None, a marker) and return what resolves once it is sent.

        The future raises what sending it raised.  From a thread other than the loop's.
        """
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        if self.closed or (message is not None and len(self._items) >= self.size):
            self._wait_for_room(message.topic if message is not None else "")
        self._items.append((message, False, done))
        if self._idle:
            self._wake()
        return done

    async def room(self, who: str) -> None:
        """Wait (on the loop) until the queue is under its bound, at most ``room_timeout``.

        A consumer publishing to its own topics faster than it consumes could
        otherwise wait for itself forever: past the timeout it goes on, the
        queue grows past its bound, and a WARNING says so.
        """
        try:
            async with asyncio.timeout(self._room_timeout):
                while len(self._items) >= self.size:
                    waiter = self._loop.create_future()
                    self._loop_room.append(waiter)
                    await waiter
        except TimeoutError:
            log.warning(
                "%s: the outgoing queue stayed full (%d of %d messages) for %gs; going on "
                "past its bound (does this consumer publish to its own topics faster than "
                "it consumes?)",
                who,
                len(self._items),
                self.size,
                self._room_timeout,
                extra={"consumer": who},
            )

    def _refuse(self, topic: str) -> None:
        raise HubClosed(f"cannot publish on {topic!r}: the hub has stopped")

    def _wait_for_room(self, topic: str) -> None:
        deadline = time.monotonic() + self._room_timeout
        while len(self._items) >= self.size or self.closed:
            if self.closed:
                self._refuse(topic)
            left = deadline - time.monotonic()
            if left <= 0:
                raise BackendUnavailable(
                    f"cannot publish on {topic!r}: the hub's outgoing queue stayed full "
                    f"({self.size} messages, moksha.outgoing_queue) for "
                    f"{self._room_timeout:g}s (moksha.publish_timeout); its consumers or "
                    "broker do not keep up"
                )
            # Ask, then look again: the task may have made room in between.
            self._room_wanted = True
            self._room.clear()
            if len(self._items) < self.size:
                break
            self._room.wait(min(left, _ROOM_POLL))
        if self.closed:
            self._refuse(topic)

    def _wake(self) -> None:
        self._idle = False
        # A closed loop: the hub stopped, and its close counted what is left.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._wake_here)

    def _wake_here(self) -> None:
        self._idle = False
        work, self._work = self._work, None
        if work is not None and not work.done():
            work.set_result(None)

    # -- errors ---------------------------------------------------------------

    def raise_failure(self) -> None:
        """Raise the first failure not yet reported to a plain-Python caller, if any.

        Raises:
            Exception: what sending an earlier ``send_message`` raised; its text
                says how many more failed since.
        """
        error, self._error = self._error, None
        if error is None:
            return
        more, self._unreported = self._unreported - 1, 0
        if more:
            error.add_note(f"{more} more message(s) sent with send_message failed after it")
        raise error

    # -- sending --------------------------------------------------------------

    async def run(self) -> None:
        """Send what is queued, in order, until cancelled (an owned task on the loop).

        Publishes still in flight when it is cancelled are cancelled with it.
        """
        async with asyncio.TaskGroup() as self._group:
            await self._send_all()

    async def _send_all(self) -> None:
        items, send = self._items, self._send
        while True:
            if not items:
                # Say "asleep" first, then look again: a putter that saw us busy
                # appended before we looked, and one that sees us asleep wakes us.
                self._idle = True
                if not items:
                    self._work = self._loop.create_future()
                    await self._work
                self._idle = False
                continue
            message, report, done = items.popleft()
            if self._room_wanted:
                self._room_wanted = False
                self._room.set()
            if self._loop_room and len(items) < self.size:
                waiters, self._loop_room = self._loop_room, []
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
            if message is None:  # a flush marker: everything before it was sent
                await self._in_flight_done()
                if done is not None:
                    done.set_result(None)
                continue
            try:
                waiting = send(message)
            except Exception as exc:
                self._failed(message, exc, report, done)
                continue
            if waiting is None:
                if done is not None:
                    done.set_result(None)
            elif self._window > 1:
                # Started in order, finished concurrently (the backend keeps the order).
                while len(self._in_flight) >= self._window:
                    await self._slot_freed()
                self._start(message, waiting, report, done)
            else:
                self._in_flight[id(message)] = message
                await self._finish(message, waiting, report, done)

    def _start(
        self,
        message: Message,
        waiting: Awaitable[None],
        report: bool,
        done: concurrent.futures.Future[None] | None,
    ) -> None:
        self._in_flight[id(message)] = message
        assert self._group is not None
        self._group.create_task(self._finish(message, waiting, report, done))

    async def _finish(
        self,
        message: Message,
        waiting: Awaitable[None],
        report: bool,
        done: concurrent.futures.Future[None] | None,
    ) -> None:
        try:
            await waiting
        except Exception as exc:
            self._failed(message, exc, report, done)
        else:
            if done is not None:
                done.set_result(None)
        finally:
            del self._in_flight[id(message)]
            freed, self._freed = self._freed, None
            if freed is not None and not freed.done():
                freed.set_result(None)

    async def _slot_freed(self) -> None:
        if self._freed is None:
            self._freed = self._loop.create_future()
        await self._freed

    async def _in_flight_done(self) -> None:
        while self._in_flight:
            await self._slot_freed()

    def _failed(
        self,
        message: Message,
        exc: Exception,
        report: bool,
        done: concurrent.futures.Future[None] | None,
    ) -> None:
        self.failed += 1
        if done is not None:
            done.set_exception(exc)
            return  # its caller waits for it and sees the error
        log.error(
            "could not publish message %s on %s: %s",
            message.id,
            message.topic,
            exc,
            extra={"topic": message.topic, "message_id": message.id},
        )
        if report:
            self._unreported += 1
            if self._error is None:
                self._error = exc

    async def drain(self, timeout: float) -> int:
        """Send what is queued for at most ``timeout`` seconds; return how many are left.

        Called by the hub when it stops, while :meth:`run` still runs.  What is
        left is counted in :attr:`dropped` and logged.
        """
        marker = self.put_marker_here()
        # A marker carries no message: it cannot fail, only time out.  Not wait_for: on
        # Python 3.11 it drops a cancellation that lands as the marker resolves (gh-86296).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(timeout, 0.0)):
                await asyncio.wrap_future(marker)
        unsent = [entry[0] for entry in self._items if entry[0] is not None]
        unsent += self._in_flight.values()  # cancelled with the sender right after this
        left = len(unsent)
        if left:
            self.dropped += left
            topics = sorted({message.topic for message in unsent})
            shown = ", ".join(topics[:5]) + (", ..." if len(topics) > 5 else "")
            log.error(
                "%d message(s) queued for publishing were not sent within "
                "moksha.shutdown_timeout=%gs and are lost (topics: %s)",
                left,
                timeout,
                shown,
            )
            for _, _, done in self._items:
                if done is not None and not done.done():
                    done.set_exception(BackendUnavailable("the hub stopped before sending it"))
            self._items.clear()
        return left

    def put_marker_here(self) -> concurrent.futures.Future[None]:
        """A flush marker queued from the loop: resolves once everything before it was sent."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._items.append((None, False, done))
        if self._idle:
            self._wake_here()
        return done

    def abandon(self) -> None:
        """Refuse what comes next (the hub stops) and wake the threads waiting for room."""
        self.closed = True
        self._room.set()
