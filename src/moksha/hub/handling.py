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

This module judges one attempt at a time; the consumer runner
(:mod:`moksha.hub.runners`) carries out the verdict: a retry waits outside the
consumer's backlog, and on a broker with acknowledgements it is put back on
the consumer's own queue with the next attempt number before the failed
delivery is acknowledged, so the count survives redeliveries and restarts.
A message is acknowledged only once it was consumed, dropped, dead-lettered
or put back: a poison message never loops forever and a crash mid-way loses
nothing (the broker delivers it again).
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

__all__ = ["ATTEMPT_HEADER", "RETRY_AT_HEADER", "DeadLetter", "MessageHandler", "Outcome"]

log = logging.getLogger("moksha.hub")

ATTEMPT_HEADER = "moksha-attempt"
RETRY_AT_HEADER = "moksha-retry-at"
"""On a retry put back on its broker queue: when it is due (seconds since the epoch)."""

# Sends a message that failed for good to the dead-letter topic.
DeadLetter = Callable[[Message, BaseException, int, str], Awaitable[None]]


class Outcome(enum.Enum):
    """What happens to a message after a failed attempt."""

    DONE = "done"  # dropped on purpose (Drop)
    RETRY = "retry"  # consumed again after a pause
    DEAD = "dead"  # sent to the dead-letter topic


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

    def attempt_of(self, message: Message) -> int:
        """Which attempt ``message`` is: its ``moksha-attempt`` header, 1 without one.

        The header travels with the message, so a message redelivered by its
        broker after a hub restarted keeps its count.
        """
        try:
            return max(1, int(message.headers.get(ATTEMPT_HEADER, 1)))
        except ValueError:
            return 1

    def consume_sync(self, message: Message) -> BaseException | None:
        """One attempt with a plain ``consume`` (in a worker thread); returns its error."""
        return self._consume_sync(self._for_consumer(message))

    async def consume_async(self, message: Message) -> BaseException | None:
        """One attempt with an ``async def consume``; returns its error."""
        return await self._consume_async(self._for_consumer(message))

    def judge(self, message: Message, error: BaseException) -> tuple[Outcome, float]:
        """What to do after ``error`` on ``message``, and the pause before a retry.

        Logs the failure (with ``topic``, ``consumer`` and ``message_id`` fields).
        """
        attempt = self.attempt_of(message)
        return self._judge(message, error, attempt), self._pause(attempt)

    async def give_up(self, message: Message, error: BaseException) -> BaseException | None:
        """Send ``message`` to the dead letters; returns the error if even that failed."""
        return await self._give_up(message, error, self.attempt_of(message))

    def retry_copy(self, message: Message, retry_at: float | None = None) -> Message:
        """``message`` as its next attempt: the attempt header incremented.

        A copy: the same message object may be in other consumers' hands.

        Args:
            message: the message that failed.
            retry_at: when it is due (for a copy put back on a broker queue),
                in the ``moksha-retry-at`` header; the copy then carries the
                encoded payload, as a wire message.
        """
        attempt = str(self.attempt_of(message) + 1)
        if retry_at is None:
            headers = {**message.headers, ATTEMPT_HEADER: attempt}
            return Message(message.topic, message.body, headers, message.id, message.timestamp_s)
        return message.with_headers({ATTEMPT_HEADER: attempt, RETRY_AT_HEADER: f"{retry_at:.3f}"})

    def counted(self, error: BaseException) -> BaseException:
        """Count ``error`` in the consumer's statistics (not Drop or Nack); return it.

        Called where ``consume`` failed, before the worker takes its next
        message, so statistics read after a later message include it.
        """
        if not isinstance(error, Drop | Nack):
            self.consumer._exception_count += 1
        return error

    def _for_consumer(self, message: Message) -> Message:
        return message.raw() if not self.consumer.jsonify else message

    def _pause(self, attempt: int) -> float:
        return float(self._retry_delay * 2 ** (attempt - 1))

    def _judge(self, message: Message, error: BaseException | None, attempt: int) -> Outcome:
        if error is None:
            return Outcome.DONE
        where = f"{self.name} on {message.topic} (message {message.id})"
        fields = {"topic": message.topic, "consumer": self.name, "message_id": message.id}
        if isinstance(error, Drop):
            log.info("%s: dropped: %s", where, error, extra=fields)
            return Outcome.DONE
        if isinstance(error, Nack):
            log.warning("%s: rejected: %s", where, error, extra=fields)
            return Outcome.DEAD
        if attempt <= self._max_retries:
            log.warning(
                "%s failed (attempt %d of %d): %r; retrying in %.2fs",
                where,
                attempt,
                self._max_retries + 1,
                error,
                self._pause(attempt),
                extra=fields,
            )
            return Outcome.RETRY
        log.error("%s failed %d times; giving up", where, attempt, exc_info=error, extra=fields)
        return Outcome.DEAD

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
            error = self.counted(exc)
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
            error = self.counted(exc)
        self._end(message, started)
        return error
