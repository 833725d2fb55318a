"""One log line per AMQP connection attempt, from Moksha, instead of three.

With the broker down, aiormq logs an ERROR per attempt ("error when creating
transport"), aio-pika an INFO or WARNING ("Reconnecting after 0.2 seconds",
with its own idea of the delay), and Moksha its own line: three lines that
disagree.  :class:`AttemptLines` is a :class:`logging.Filter` put on those
two libraries' loggers: it drops their lines about the connections of Moksha's
AMQP backends, and hands each failed reconnection attempt to its backend,
which logs one WARNING with the broker's address and the next delay.  Lines
about other programs' connections in the same process pass untouched, except
aiormq's transport ERROR, which names no connection and is always followed by
a line of its owner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["AttemptLines", "attempt_lines"]

# Called with the error and aio-pika's next delay when an owned reconnection attempt failed.
OnAttempt = Callable[[BaseException | None, float], None]

_AIORMQ = "aiormq.connection"
_AIO_PIKA = "aio_pika.robust_connection"
_AIO_PIKA_TOOLS = "aio_pika.tools"
_AIORMQ_ATTEMPT_LINES = ("error when creating transport", "Cancelling cause reader exited")


class AttemptLines(logging.Filter):
    """Drops aiormq's and aio-pika's per-attempt lines about connections Moksha owns."""

    def __init__(self) -> None:
        super().__init__()
        self._owners: dict[int, OnAttempt] = {}
        self._installed = False

    def own(self, connection: object, on_attempt: OnAttempt) -> None:
        """Take over the log lines about ``connection`` (an aio-pika robust connection)."""
        if not self._installed:
            for name in (_AIORMQ, _AIO_PIKA, _AIO_PIKA_TOOLS):
                logging.getLogger(name).addFilter(self)
            self._installed = True
        self._owners[id(connection)] = on_attempt

    def disown(self, connection: object) -> None:
        """Stop handling ``connection``'s lines (it is closed)."""
        self._owners.pop(id(connection), None)

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if record.name == _AIORMQ:
            # Neither names its connection; the owner's "cannot reach" or "lost" line follows.
            return not text.startswith(_AIORMQ_ATTEMPT_LINES) or not self._owners
        args: Any = record.args
        if record.name == _AIO_PIKA_TOOLS:
            # A lost connection closes its channels, and aio-pika logs an ERROR per
            # channel for that; the backend logged the loss once already.
            return not (self._owners and "RobustChannel._on_close" in repr(args))
        if record.name != _AIO_PIKA or not isinstance(args, tuple) or not args:
            return True
        on_attempt = self._owners.get(id(args[0]))
        if on_attempt is None:
            return True
        delay = args[-1]
        if record.levelno >= logging.WARNING and isinstance(delay, int | float):
            # 'Connection attempt to "%s" failed: %s. Reconnecting after %r seconds.',
            # '... cancelled. Reconnecting ...', 'Reconnect attempt failed %s due to %s: %s. ...'
            errors = [arg for arg in args[1:-1] if isinstance(arg, BaseException)]
            on_attempt(errors[0] if errors else None, float(delay))
        return False  # and its INFO and DEBUG lines: the backend logs what matters


attempt_lines = AttemptLines()
"""The one filter: logging filters are process-wide, as the loggers they sit on."""
