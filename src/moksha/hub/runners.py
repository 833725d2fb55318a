"""Running plugins: each consumer behind a bounded backlog, each polling producer on a timer.

What happens to each message inside a consumer (hooks, retries, dead
letters) is :mod:`moksha.hub.handling`.

Consumer backlog policy: a backlog holds at most ``moksha.consumer_backlog``
messages.  When it is full, delivery *waits* for room, which slows the
publisher (memory bus) or stops taking deliveries from the broker (prefetch),
so nothing is dropped and memory stays bounded.

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
from collections.abc import Awaitable, Callable
from typing import Any

from moksha.config import Config
from moksha.hub.api.consumer import Consumer
from moksha.hub.api.producer import PollingProducer
from moksha.hub.backlog import Backlog
from moksha.hub.handling import DeadLetter, MessageHandler
from moksha.hub.outgoing import Outgoing, loop_publisher
from moksha.message import Message

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
    """

    def __init__(
        self,
        consumer: Consumer,
        *,
        config: Config,
        loop: asyncio.AbstractEventLoop,
        dead_letter: DeadLetter,
        outgoing: Outgoing | None = None,
    ) -> None:
        self.consumer = consumer
        self._outgoing = outgoing
        self.name = type(consumer).__name__
        self.is_async = inspect.iscoroutinefunction(consumer.consume)
        self.workers = config.workers_per_consumer
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
        await self._put(item)
        error = await item.done
        if error is not None:
            raise error

    @property
    def idle(self) -> bool:
        """Whether every message handed to this consumer has been dealt with."""
        return self._handed == sum(self._finished)

    async def stop(self, timeout: float) -> int:
        """Let the backlog drain for at most ``timeout`` seconds, then stop.

        Returns the number of messages left unprocessed.
        """
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
        left = self._unprocessed()
        if left:
            log.warning("%s: %d messages left unprocessed after %ss", self.name, left, timeout)
        return left

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
        handle, plain = handler.handle_sync, handler.plain
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
                self._call_on_loop(item.settle, handle(item.message))
            elif plain:
                # MessageHandler.handle_sync's first attempt, inlined for plain
                # consumers (see _run_async).  Failures go the long way.
                consumer.headcount_out += 1
                started = clock()
                try:
                    consume(item)
                except Exception as exc:
                    handler.after_failure_sync(item, exc)
                record(clock() - started)
            else:
                handle(item)
            finished[index] += 1  # only this worker writes its slot: no lock needed

    async def _handle_async(self, item: _Item) -> None:
        if isinstance(item, _Awaited):
            item.settle(await self._handler.handle_async(item.message))
        else:
            await self._handler.handle_async(item)
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
            handle = self._handler.handle_async
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
                if isinstance(item, _Awaited):
                    item.settle(await handle(item.message))
                elif plain:
                    # MessageHandler.handle_async's first attempt, inlined for plain
                    # consumers: a coroutine less per message.  Failures go the long way.
                    consumer.headcount_out += 1
                    started = clock()
                    try:
                        await consume(item)
                    except Exception as exc:
                        await self._handler.after_failure_async(item, exc)
                    record(clock() - started)
                else:
                    await handle(item)
                finished[0] += 1
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


async def run_polling_producer(producer: PollingProducer) -> None:
    """Call ``producer.poll()`` every ``producer.frequency`` until cancelled or stopped.

    Ticks are kept on a fixed schedule; a poll that overruns its interval
    delays the next one rather than making polls pile up.  A plain ``poll``
    runs in a worker thread.  Exceptions are logged and counted.
    """
    loop = asyncio.get_running_loop()
    is_async = inspect.iscoroutinefunction(producer.poll)
    interval = producer.interval
    name = type(producer).__name__

    async def poll_once() -> None:
        producer._last_ran = time.time()
        try:
            if is_async:
                await producer.poll()
            else:
                await asyncio.to_thread(producer.poll)
        except Exception:
            producer._exception_count += 1
            log.exception("%s.poll failed", name)
        else:
            producer._exception_count = 0

    if producer.now and not producer.die:
        await poll_once()
    next_at = loop.time()
    while not producer.die:
        next_at += interval
        delay = next_at - loop.time()
        if delay < 0:
            next_at = loop.time()
            delay = 0
        await asyncio.sleep(delay)
        if not producer.die:
            await poll_once()
