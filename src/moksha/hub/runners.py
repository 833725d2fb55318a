"""Running consumers: each consumer instance behind a bounded backlog, fed to its workers.

What happens to each message inside a consumer (hooks, retries, dead
letters) is :mod:`moksha.hub.handling`; polling producers run on their timer
in :mod:`moksha.hub.polling`.

Consumer backlog policy: a backlog holds at most ``moksha.consumer_backlog``
messages.  When it is full, delivery *waits* for room, which slows the
publisher (memory bus) or stops taking deliveries from the broker (prefetch),
so nothing is dropped and memory stays bounded.  Back-pressure is per
consumer: only deliveries to the consumer that is behind wait.

A failed message waits for its retry outside the backlog, in the consumer's
:class:`~moksha.hub.retries.RetryPen` (at most ``moksha.retry_backlog``), so
a consumer failing on every message keeps taking new ones at full speed.  On
a broker with acknowledgements (blocking mode) the retry is instead put back
on the consumer's own queue with the next attempt number (and when it is
due) and the failed delivery acknowledged: the count survives redeliveries
and restarts of the hub.

A plain ``consume`` runs in ``moksha.workers_per_consumer`` worker threads fed
by a thread-safe queue; an ``async def consume`` runs on the event loop, at most
that many at a time.  With one worker, messages are consumed in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from moksha.config import Config
from moksha.errors import HubClosed
from moksha.hub.api.consumer import Consumer
from moksha.hub.backlog import Backlog
from moksha.hub.handling import RETRY_AT_HEADER, DeadLetter, MessageHandler, Outcome
from moksha.hub.outgoing import Outgoing, loop_publisher
from moksha.hub.polling import run_polling_producer
from moksha.hub.retries import RetryPen
from moksha.message import Message

# run_polling_producer lives in moksha.hub.polling; still importable from here.
__all__ = ["ConsumerRunner", "run_polling_producer"]

log = logging.getLogger("moksha.hub")

_STOP: Any = object()


class _Awaited:
    """A backlog entry whose sender waits for the outcome (see :meth:`ConsumerRunner.process`)."""

    __slots__ = ("done", "message")

    def __init__(self, message: Message, done: asyncio.Future[BaseException | None]) -> None:
        self.message = message
        self.done = done

    def settle(self, error: BaseException | None) -> None:
        if not self.done.done():
            self.done.set_result(error)


# A backlog entry: a message, or one whose sender waits for the outcome.
_Item = Message | _Awaited

# Puts a retry back on the consumer's own broker queue; False when it cannot.
Requeue = Callable[[Message], Awaitable[bool]]


def _message_of(item: _Item) -> Message:
    return item.message if isinstance(item, _Awaited) else item


def _wake_all(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


class ConsumerRunner:
    """Feeds one consumer instance: its backlog and its workers.

    Args:
        consumer: the consumer instance.
        config: supplies ``moksha.workers_per_consumer`` (worker threads for a
            plain ``consume``, concurrent calls for an ``async def``),
            ``moksha.consumer_backlog`` and the retry settings.
        loop: the hub's event loop.
        dead_letter: publishes a message that failed for good.
        outgoing: the hub's outgoing queue; an ``async def`` consumer that
            filled it with ``send_message`` waits for room before its next message.
        requeue: puts a retry back on the consumer's broker queue (blocking mode
            on a backend with acknowledgements), or None to retry in memory.
    """

    def __init__(
        self,
        consumer: Consumer,
        *,
        config: Config,
        loop: asyncio.AbstractEventLoop,
        dead_letter: DeadLetter,
        outgoing: Outgoing | None = None,
        requeue: Requeue | None = None,
    ) -> None:
        self.consumer = consumer
        self._outgoing = outgoing
        self._requeue = requeue
        self._pen: RetryPen[_Item] = RetryPen(config.retry_backlog, loop, self._unpen)
        self._tasks: asyncio.TaskGroup | None = None
        self._settling = 0  # failures whose verdict is being carried out on the loop
        self._failures = 0  # attempts that failed, as workers' counts leave them out
        self.name = type(consumer).__name__
        self.is_async = inspect.iscoroutinefunction(consumer.consume)
        # A consumer may say how many messages it takes at a time (the archive's recorder
        # writes them in batches); else moksha.workers_per_consumer.
        workers = getattr(consumer, "workers", None)
        self.workers = (
            workers if isinstance(workers, int) and workers > 0 else (config.workers_per_consumer)
        )
        self._handler = MessageHandler(consumer, config, dead_letter, loop)
        self._loop = loop
        backlog = config.consumer_backlog
        self._task: asyncio.Task[None] | None = None
        self._threads: list[threading.Thread] = []
        self._threads_running = 0
        # Messages put in the backlog, and those each worker finished (for `idle`).
        self._handed = 0
        self._finished = [0] * self.workers
        self._threads_exited = asyncio.Event()
        self._space_waiters: list[asyncio.Future[None]] = []
        self._async_backlog: Backlog[_Item] = Backlog(backlog)
        # A C-implemented FIFO (put and get cost a fraction of queue.Queue's locks);
        # only the loop thread puts, so it keeps the bound itself (see _put).
        self._thread_backlog: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._backlog_limit = backlog
        self._stops_put = 0
        consumer._backlog_size = (
            self._async_backlog.__len__ if self.is_async else self._thread_backlog.qsize
        )

    def start(self, tasks: asyncio.TaskGroup) -> None:
        """Start the workers (tasks in ``tasks``, or threads)."""
        self._tasks = tasks
        if self.is_async:
            self._task = tasks.create_task(self._run_async(), name=f"moksha consumer {self.name}")
            return
        for i in range(self.workers):
            thread = threading.Thread(
                target=self._run_thread, args=(i,), name=f"moksha {self.name}-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self._threads_running = len(self._threads)

    def deliver(self, message: Message) -> Awaitable[None] | None:
        """Queue ``message`` (a backend :data:`~moksha.hub.backends.Handler`).

        Returns None once it is in the backlog, or, when the backlog is full,
        an awaitable that waits for room.
        """
        self.consumer.headcount_in += 1
        if self._pen.full:
            return self._put_when_pen_has_room(message)
        if self.is_async:
            if not self._async_backlog.offer(message):
                return self._put(message)
        else:
            if self._thread_backlog.qsize() >= self._backlog_limit:
                return self._put(message)
            self._thread_backlog.put(message)
        self._handed += 1
        return None

    async def process(self, message: Message) -> None:
        """Queue ``message`` and return once it was consumed.

        Raises:
            Exception: whatever ``consume`` raised, so the backend can nack.
        """
        self.consumer.headcount_in += 1
        item = _Awaited(message, self._loop.create_future())
        if self._pen.full:
            await self._pen.room()
        await self._put(item)
        error = await item.done
        if error is not None:
            raise error

    async def _put_when_pen_has_room(self, message: Message) -> None:
        await self._pen.room()
        await self._put(message)

    @property
    def idle(self) -> bool:
        """Whether every message handed to this consumer has been dealt with."""
        return (
            self._handed == sum(self._finished) + self._failures
            and not self._pen
            and not self._settling
        )

    # -- failures (on the loop) ----------------------------------------------

    def _failed(self, item: _Item, error: BaseException) -> None:
        """Carry out the verdict on a failed attempt (from a worker, on the loop)."""
        message = _message_of(item)
        outcome, pause = self._handler.judge(message, error)
        self._failures += 1
        if outcome is Outcome.DONE:
            if isinstance(item, _Awaited):
                item.settle(None)
        elif outcome is Outcome.DEAD:
            self._own(self._give_up(item, message, error))
        elif isinstance(item, _Awaited) and self._requeue is not None:
            self._own(self._put_back(item, message, pause))
        else:
            self._hold(item, self._handler.retry_copy(message), pause)

    def _hold(self, item: _Item, message: Message, pause: float) -> None:
        if isinstance(item, _Awaited):
            item.message = message
        else:
            item = message
        self._pen.hold(item, pause)

    def _unpen(self, item: _Item) -> None:
        """A retry is due: to the end of the backlog, past its bound (it was admitted)."""
        self._handed += 1
        if self.is_async:
            self._async_backlog.push(item)
        else:
            self._thread_backlog.put(item)

    def _own(self, coro: Coroutine[Any, Any, None]) -> None:
        self._settling += 1
        assert self._tasks is not None
        self._tasks.create_task(coro)

    async def _give_up(self, item: _Item, message: Message, error: BaseException) -> None:
        try:
            failed = await self._handler.give_up(message, error)
            if isinstance(item, _Awaited):
                item.settle(failed)
        finally:
            self._settling -= 1

    async def _put_back(self, item: _Awaited, message: Message, pause: float) -> None:
        """Requeue the next attempt on the broker, then let the failed delivery be acked."""
        assert self._requeue is not None
        retry = self._handler.retry_copy(message, retry_at=time.time() + pause)
        try:
            try:
                requeued = await self._requeue(retry)
            except Exception as exc:
                log.warning(
                    "%s: could not put message %s back on its queue (%s); retrying it here",
                    self.name,
                    message.id,
                    exc,
                    extra={"consumer": self.name, "topic": message.topic, "message_id": message.id},
                )
                requeued = False
            if requeued:
                item.settle(None)
            else:
                self._hold(item, self._handler.retry_copy(message), pause)
        finally:
            self._settling -= 1

    def _not_due(self, item: _Item) -> float:
        """Seconds until a retry put back on the broker is due (0 for any other message)."""
        if not isinstance(item, _Awaited):
            return 0.0
        due = item.message.headers.get(RETRY_AT_HEADER)
        if due is None:
            return 0.0
        try:
            return max(0.0, float(due) - time.time())
        except ValueError:
            return 0.0

    def _hold_until_due(self, item: _Item, delay: float) -> None:
        self._failures += 1  # taken from the backlog, not consumed: like a failure
        self._pen.hold(item, delay)

    async def stop(self, timeout: float) -> int:
        """Let the backlog drain for at most ``timeout`` seconds, then stop.

        Returns the number of messages left unprocessed (the hub logs them).
        """
        self._release_pen()
        try:
            async with asyncio.timeout(timeout):
                if self.is_async:
                    await self._put(_STOP)
                    if self._task is not None:
                        await asyncio.shield(self._task)
                else:
                    for _ in self._threads:
                        await self._put(_STOP)
                    await self._threads_exited.wait()
        except TimeoutError:
            if self._task is not None:
                self._task.cancel()
        return self._unprocessed()

    def _release_pen(self) -> None:
        """Give back what waits for a retry: to the broker (nack), or count it as lost."""
        lost = 0
        for item in self._pen.take_all():
            if isinstance(item, _Awaited):
                item.settle(HubClosed("the hub stopped before the retry"))
            else:
                lost += 1
        if lost:
            log.warning(
                "%s: %d failed message(s) waiting for a retry were dropped at shutdown",
                self.name,
                lost,
                extra={"consumer": self.name},
            )

    def _unprocessed(self) -> int:
        """Messages still waiting in the backlog (stop markers are not messages)."""
        if self.is_async:
            return sum(item is not _STOP for item in self._async_backlog.snapshot())
        stops_taken = len(self._threads) - self._threads_running
        return self._thread_backlog.qsize() - (self._stops_put - stops_taken)

    def _thread_exited(self) -> None:
        self._threads_running -= 1
        if not self._threads_running:
            self._threads_exited.set()

    async def _put(self, item: _Item) -> None:
        if item is not _STOP:
            self._handed += 1
        if self.is_async:
            await self._async_backlog.put(item)
            return
        backlog = self._thread_backlog
        if item is _STOP:  # past the bound: stopping must not wait for room
            self._stops_put += 1
            backlog.put(item)
            return
        while backlog.qsize() >= self._backlog_limit:
            # Register for a wake-up, then look once more: a worker may have
            # taken an item between the first look and the registration.
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._space_waiters.append(waiter)
            if backlog.qsize() < self._backlog_limit:
                break
            await waiter
        backlog.put(item)

    def _run_thread(self, index: int) -> None:
        backlog = self._thread_backlog
        handler = self._handler
        handle, plain = handler.consume_sync, handler.plain
        consumer = self.consumer
        consume, record, clock = consumer.consume, consumer._times.append, time.perf_counter
        finished = self._finished
        while True:
            item = backlog.get()
            if self._space_waiters:
                waiters, self._space_waiters = self._space_waiters, []
                self._call_on_loop(_wake_all, waiters)
            if item is _STOP:
                self._call_on_loop(self._thread_exited)
                return
            if isinstance(item, _Awaited):
                if delay := self._not_due(item):
                    self._call_on_loop(self._hold_until_due, item, delay)
                    continue
                error = handle(item.message)
                if error is not None:
                    self._call_on_loop(self._failed, item, error)
                    continue  # counted by _failed, so `idle` never sees it done too early
                self._call_on_loop(item.settle, None)
            elif plain:
                # MessageHandler.consume_sync, inlined for plain consumers (see
                # _run_async).  Failures go the long way, on the loop.
                consumer.headcount_out += 1
                started = clock()
                failed = None
                try:
                    consume(item)
                except Exception as exc:
                    failed = exc
                record(clock() - started)
                if failed is not None:
                    # Outside the except block: a retry raising there would chain to
                    # this error, and its traceback would be logged twice.
                    self._call_on_loop(self._failed, item, handler.counted(failed))
                    continue
            elif (error := handle(item)) is not None:
                self._call_on_loop(self._failed, item, error)
                continue
            finished[index] += 1  # only this worker writes its slot: no lock needed

    async def _handle_async(self, item: _Item) -> None:
        if delay := self._not_due(item):
            self._hold_until_due(item, delay)
            return
        error = await self._handler.consume_async(_message_of(item))
        if error is not None:
            self._failed(item, error)
            return
        if isinstance(item, _Awaited):
            item.settle(None)
        self._finished[0] += 1

    async def _room_for_more(self, outgoing: Outgoing) -> None:
        """This consumer published since we last looked: wait if the queue is past its bound.

        Only code on the loop can push the outgoing queue past its bound
        (threads wait for room), so a consumer that did so waits here before
        its next message; consumers that did not publish never wait.
        """
        if len(outgoing) > outgoing.size:
            await outgoing.room(self.name)

    def _call_on_loop(self, callback: Callable[..., None], *args: Any) -> None:
        # The loop may have closed while this worker was still busy.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    async def _run_async(self) -> None:
        backlog = self._async_backlog
        # What this consumer queues with send_message from here (and its tasks) is counted.
        mine = [0]
        loop_publisher.set(mine)
        if self.workers == 1:
            # _handle_async, inlined: one coroutine less per message on the common path.
            plain = self._handler.plain
            consumer = self.consumer
            consume, record, clock = consumer.consume, consumer._times.append, time.perf_counter
            finished = self._finished
            outgoing = self._outgoing
            published = 0
            while (item := backlog.pop() or await backlog.get()) is not _STOP:
                if outgoing is not None and mine[0] != published:
                    await self._room_for_more(outgoing)
                    published = mine[0]
                if plain and not isinstance(item, _Awaited):
                    # MessageHandler.consume_async, inlined for plain consumers:
                    # a coroutine less per message.  Failures go the long way.
                    consumer.headcount_out += 1
                    started = clock()
                    failed = None
                    try:
                        await consume(item)
                    except Exception as exc:
                        failed = exc
                    record(clock() - started)
                    if failed is not None:  # outside the except block, as in _run_thread
                        self._failed(item, self._handler.counted(failed))
                        continue
                    finished[0] += 1
                else:
                    await self._handle_async(item)
            return
        slots = asyncio.Semaphore(self.workers)

        async def one(item: _Item) -> None:
            try:
                await self._handle_async(item)
            finally:
                slots.release()

        outgoing = self._outgoing
        published = 0
        async with asyncio.TaskGroup() as running:
            while (item := backlog.pop() or await backlog.get()) is not _STOP:
                if outgoing is not None and mine[0] != published:
                    await self._room_for_more(outgoing)
                    published = mine[0]
                await slots.acquire()
                running.create_task(one(item))
