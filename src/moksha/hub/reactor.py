"""``from moksha.hub.reactor import reactor``: what original Moksha plugins used, on asyncio.

Original plugins scheduled work on the Twisted reactor::

    from moksha.hub.reactor import reactor

    class Echo(Consumer):
        topic = "org.example.in"

        def consume(self, message):
            reactor.callLater(0.5, self.send_message, "org.example.out", message.body)

This module keeps those calls working inside our hub.  It is a compatibility
layer over asyncio, **not** a Twisted reactor: it offers only ``callLater``,
``callInThread``, ``callFromThread``, ``seconds()`` and ``running``.  There is
no ``run()`` or ``stop()``: the hub owns its event loop and starts and stops
it; a plugin that wants the hub gone calls ``hub.close()``.

Which loop the calls use: the running loop of the calling thread when there is
one (an ``async def consume``, a hub callback); otherwise the loop of the most
recently started hub that is still running (a plain ``consume`` in a worker
thread).  Hubs register their loop with :func:`attach` when they start and
:func:`detach` when they stop.  With neither, every call raises
:class:`~moksha.errors.HubClosed`.

Differences from Twisted: ``seconds()`` and ``IDelayedCall.getTime()`` are the
event loop's monotonic clock, not wall-clock time; cancelling a call that
already ran or was cancelled does nothing instead of raising; an exception in
a scheduled function is logged (logger ``moksha.hub.reactor``), never raised
into the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

from moksha.errors import HubClosed

__all__ = ["DelayedCall", "Reactor", "attach", "detach", "reactor"]

log = logging.getLogger(__name__)

_NO_HUB = "no Moksha hub is running in this process: start one before using moksha.hub.reactor"

# The loops of started hubs, oldest first.  Module-level state on purpose: the
# original API is a process-wide singleton, so the hubs of this process must
# be findable from any thread without a reference to one of them.
_attached: list[asyncio.AbstractEventLoop] = []
_attached_lock = threading.Lock()


def attach(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop`` the loop :data:`reactor` uses from threads without one.

    Called by the hub when it starts.  Attaching the same loop twice (two
    hubs on one loop) needs two :func:`detach` calls.

    Args:
        loop: the started hub's event loop.
    """
    with _attached_lock:
        _attached.append(loop)


def detach(loop: asyncio.AbstractEventLoop) -> None:
    """Forget one :func:`attach` of ``loop`` (the newest); unknown loops are ignored.

    Args:
        loop: the stopping hub's event loop.
    """
    with _attached_lock:
        for i in range(len(_attached) - 1, -1, -1):
            if _attached[i] is loop:
                del _attached[i]
                return


def _current_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    with _attached_lock:
        for loop in reversed(_attached):
            # A hub that died without detaching leaves a stopped loop behind.
            if loop.is_running() and not loop.is_closed():
                return loop
    return None


def _require_loop() -> asyncio.AbstractEventLoop:
    loop = _current_loop()
    if loop is None:
        raise HubClosed(_NO_HUB)
    return loop


def _call_soon_threadsafe(loop: asyncio.AbstractEventLoop, f: Callable[..., Any]) -> None:
    try:
        loop.call_soon_threadsafe(f)
    except RuntimeError as exc:  # the loop closed after we picked it
        raise HubClosed(_NO_HUB) from exc


def _run_logged(
    what: str, f: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any]
) -> None:
    """Call ``f``; log what it raises, since nobody is there to catch it."""
    try:
        result = f(*args, **kw)
    except Exception:
        log.exception("reactor.%s(%r) failed", what, f)
        return
    if inspect.iscoroutine(result):
        # An ``async def`` passed here would silently never run: say so instead.
        result.close()
        log.error(
            "reactor.%s(%r) got a coroutine function; it runs plain functions only "
            "(use asyncio in async code)",
            what,
            f,
        )


class _State(enum.Enum):
    PENDING = "pending"
    CALLED = "called"
    CANCELLED = "cancelled"


class DelayedCall:
    """A call scheduled by :meth:`Reactor.callLater` (Twisted's ``IDelayedCall`` subset).

    Method names are Twisted's (camelCase) so original plugins run unchanged.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        delay: float,
        f: Callable[..., Any],
        args: tuple[Any, ...],
        kw: dict[str, Any],
    ) -> None:
        self._loop = loop
        self._delay = delay
        self._call = functools.partial(_run_logged, "callLater", f, args, kw)
        self._time = loop.time() + delay
        self._state = _State.PENDING
        # cancel() may come from any thread while the loop fires the call.
        self._lock = threading.Lock()
        self._handle: asyncio.TimerHandle | None = None

    def _schedule(self) -> None:
        """Start the timer (on the loop thread)."""
        with self._lock:
            if self._state is _State.PENDING:
                self._handle = self._loop.call_later(self._delay, self._fire)

    def _fire(self) -> None:
        with self._lock:
            if self._state is not _State.PENDING:
                return
            self._state = _State.CALLED
        self._call()

    def cancel(self) -> None:
        """Prevent the call, from any thread.  Does nothing once it ran or was cancelled."""
        with self._lock:
            if self._state is not _State.PENDING:
                return
            self._state = _State.CANCELLED
            handle = self._handle
        if handle is None:
            return  # not scheduled yet: _schedule will see the state
        # RuntimeError: the loop closed, so the timer will never fire anyway.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(handle.cancel)

    def active(self) -> bool:
        """Whether the call is still to come (neither run nor cancelled)."""
        return self._state is _State.PENDING

    def getTime(self) -> float:
        """When the call is due, in :meth:`Reactor.seconds` units."""
        return self._time

    def __repr__(self) -> str:
        return f"<DelayedCall {self._call.args[1]!r} at {self._time:.3f} ({self._state.value})>"


class Reactor:
    """The subset of Twisted's reactor that Moksha plugins used, over the hub's loop.

    Use the module's :data:`reactor` instance rather than creating one.
    """

    @property
    def running(self) -> bool:
        """Whether calls would find a loop (a hub is running, or the caller runs on a loop)."""
        return _current_loop() is not None

    def seconds(self) -> float:
        """The event loop's clock (monotonic seconds), as used by :meth:`DelayedCall.getTime`.

        Raises:
            HubClosed: no hub is running and the caller runs on no event loop.
        """
        return _require_loop().time()

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any, **kw: Any) -> DelayedCall:
        """Call ``f(*args, **kw)`` on the event loop after ``delay`` seconds; any thread.

        Args:
            delay: seconds to wait (0 runs it as soon as the loop gets to it).
            f: a plain function; what it raises is logged.

        Returns:
            The scheduled call, with ``cancel()``, ``active()`` and ``getTime()``.

        Raises:
            HubClosed: no hub is running and the caller runs on no event loop.
        """
        loop = _require_loop()
        call = DelayedCall(loop, max(0.0, delay), f, args, kw)
        if _on_thread_of(loop):
            call._schedule()
        else:
            _call_soon_threadsafe(loop, call._schedule)
        return call

    def callInThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Call ``f(*args, **kw)`` in a worker thread (the loop's default executor).

        Args:
            f: a plain function, free to block; what it raises is logged.

        Raises:
            HubClosed: no hub is running and the caller runs on no event loop.
        """
        loop = _require_loop()
        call = functools.partial(_run_logged, "callInThread", f, args, kw)
        # run_in_executor creates a loop future, so it must run on the loop's thread.
        _call_soon_threadsafe(loop, functools.partial(loop.run_in_executor, None, call))

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Call ``f(*args, **kw)`` on the event loop, soon; safe from any thread.

        Args:
            f: a plain function that must not block; what it raises is logged.

        Raises:
            HubClosed: no hub is running and the caller runs on no event loop.
        """
        loop = _require_loop()
        _call_soon_threadsafe(loop, functools.partial(_run_logged, "callFromThread", f, args, kw))


def _on_thread_of(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


reactor = Reactor()
"""The process-wide instance plugins import."""
