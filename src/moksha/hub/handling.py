"""What happens to one message in one consumer: hooks, statistics, retries, dead letters.

The hooks run in the original Moksha's order: ``validate`` (raising rejects
the message), ``pre_consume``, ``consume``, ``post_consume``.  When
``consume`` raises:

* :class:`~moksha.hub.api.Drop`: the message is discarded at once;
* :class:`~moksha.hub.api.Nack`: it goes to the dead-letter topic at once;
* anything else: it is consumed again, up to ``moksha.max_retries`` more times
  with a growing pause (``moksha.retry_delay``, doubling), the attempt number
  in the ``moksha-attempt`` header; then it goes to the dead-letter topic
  (``moksha.dead_letter_topic``, ``<topic>.dead`` by default) with the error
  in the ``moksha-error`` header.

A message is acknowledged to its broker only after this is over, so a poison
message never loops forever and a crash mid-way loses nothing (the broker
delivers it again).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable

from moksha.config import Config
from moksha.hub.api.consumer import Consumer, Drop, Nack
from moksha.message import Message

__all__ = ["ATTEMPT_HEADER", "DeadLetter", "MessageHandler"]

log = logging.getLogger("moksha.hub")

ATTEMPT_HEADER = "moksha-attempt"

# Sends a message that failed for good to the dead-letter topic.
DeadLetter = Callable[[Message, BaseException, int, str], Awaitable[None]]


class _Outcome(enum.Enum):
    DONE = "done"
    RETRY = "retry"
    DEAD = "dead"


class MessageHandler:
    """Runs one consumer's hooks on a message, retrying and dead-lettering failures.

    Args:
        consumer: the consumer instance.
        config: supplies ``max_retries`` and ``retry_delay``.
        dead_letter: publishes a message that failed for good.
        loop: the hub's event loop (sync consumers reach it from worker threads).
    """

    def __init__(
        self,
        consumer: Consumer,
        config: Config,
        dead_letter: DeadLetter,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.consumer = consumer
        self.name = type(consumer).__name__
        self._max_retries = config.max_retries
        self._retry_delay = config.retry_delay
        self._dead_letter = dead_letter
        self._loop = loop
        cls = type(consumer)
        # Hooks left as Consumer defines them do nothing: skip those calls per message.
        self.plain = (
            consumer.jsonify
            and cls.validate is Consumer.validate
            and cls.pre_consume is Consumer.pre_consume
            and cls.post_consume is Consumer.post_consume
        )

    def handle_sync(self, message: Message) -> BaseException | None:
        """Consume ``message`` with a plain ``consume`` (in a worker thread).

        Returns None when the message is done with (consumed, rejected, dropped
        or dead-lettered), else the error that should make the broker redeliver it.
        """
        error = self._consume_sync(self._for_attempt(message, 1))
        if error is None:
            return None
        return self.after_failure_sync(message, error)

    def after_failure_sync(self, message: Message, error: BaseException) -> BaseException | None:
        """Retry, dead-letter or drop ``message`` whose first attempt raised ``error``.

        Runs in the consumer's worker thread; returns as :meth:`handle_sync`.
        """
        attempt = 1
        while (outcome := self._judge(message, error, attempt)) is _Outcome.RETRY:
            time.sleep(self._pause(attempt))
            attempt += 1
            failed = self._consume_sync(self._for_attempt(message, attempt))
            if failed is None:
                return None
            error = failed
        if outcome is _Outcome.DEAD:
            dead = self._give_up(message, error, attempt)
            return asyncio.run_coroutine_threadsafe(dead, self._loop).result()
        return None

    async def handle_async(self, message: Message) -> BaseException | None:
        """Consume ``message`` with an ``async def consume``; returns as :meth:`handle_sync`."""
        error = await self._consume_async(self._for_attempt(message, 1))
        if error is None:
            return None
        return await self.after_failure_async(message, error)

    async def after_failure_async(
        self, message: Message, error: BaseException
    ) -> BaseException | None:
        """Retry, dead-letter or drop ``message`` whose first attempt raised ``error``.

        Returns as :meth:`handle_sync`.
        """
        attempt = 1
        while (outcome := self._judge(message, error, attempt)) is _Outcome.RETRY:
            await asyncio.sleep(self._pause(attempt))
            attempt += 1
            failed = await self._consume_async(self._for_attempt(message, attempt))
            if failed is None:
                return None
            error = failed
        if outcome is _Outcome.DEAD:
            return await self._give_up(message, error, attempt)
        return None

    def _for_attempt(self, message: Message, attempt: int) -> Message:
        if attempt > 1:
            # A copy: the same message object may be in other consumers' hands.
            headers = {**message.headers, ATTEMPT_HEADER: str(attempt)}
            message = Message(message.topic, message.body, headers, message.id, message.timestamp_s)
        return message.raw() if not self.consumer.jsonify else message

    def _pause(self, attempt: int) -> float:
        return float(self._retry_delay * 2 ** (attempt - 1))

    def _judge(self, message: Message, error: BaseException | None, attempt: int) -> _Outcome:
        if error is None:
            return _Outcome.DONE
        where = f"{self.name} on {message.topic} (message {message.id})"
        if isinstance(error, Drop):
            log.info("%s: dropped: %s", where, error)
            return _Outcome.DONE
        if isinstance(error, Nack):
            log.warning("%s: rejected: %s", where, error)
            return _Outcome.DEAD
        self.consumer._exception_count += 1
        if attempt <= self._max_retries:
            log.warning(
                "%s failed (attempt %d of %d): %r; retrying in %.2fs",
                where,
                attempt,
                self._max_retries + 1,
                error,
                self._pause(attempt),
            )
            return _Outcome.RETRY
        log.error("%s failed %d times; giving up", where, attempt, exc_info=error)
        return _Outcome.DEAD

    async def _give_up(
        self, message: Message, error: BaseException, attempts: int
    ) -> BaseException | None:
        try:
            await self._dead_letter(message, error, attempts, self.name)
        except Exception as exc:
            # Could not park it: hand it back to the broker rather than lose it.
            log.error(
                "%s: cannot send message %s to the dead letters: %s", self.name, message.id, exc
            )
            return exc
        return None

    # The hooks, in the order the original Moksha called them.

    def _begin(self, message: Message) -> bool:
        consumer = self.consumer
        consumer.headcount_out += 1
        try:
            consumer.validate(message)
        except Exception as exc:
            log.warning("%s rejected a message on %s: %s", self.name, message.topic, exc)
            return False
        try:
            consumer.pre_consume(message)
        except Exception:
            log.exception("%s.pre_consume failed on %s", self.name, message.topic)
        return True

    def _end(self, message: Message, started: float) -> None:
        try:
            self.consumer.post_consume(message)
        except Exception:
            log.exception("%s.post_consume failed on %s", self.name, message.topic)
        self.consumer._times.append(time.perf_counter() - started)

    def _consume_sync(self, message: Message) -> BaseException | None:
        started = time.perf_counter()
        if self.plain:
            self.consumer.headcount_out += 1
        elif not self._begin(message):
            return None
        error = None
        try:
            self.consumer.consume(message)
        except Exception as exc:
            error = exc
        if self.plain:
            self.consumer._times.append(time.perf_counter() - started)
        else:
            self._end(message, started)
        return error

    async def _consume_async(self, message: Message) -> BaseException | None:
        started = time.perf_counter()
        if not self._begin(message):
            return None
        error = None
        try:
            await self.consumer.consume(message)
        except Exception as exc:
            error = exc
        self._end(message, started)
        return error
