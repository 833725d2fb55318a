"""The hub as a client of the bus: publish and subscribe, from asyncio or plain Python.

:class:`MokshaHub` has one implementation, on asyncio, and two faces:

* from asyncio: ``async with MokshaHub(config) as hub``, ``await
  hub.publish(topic, body)``, ``await hub.asubscribe(pattern, callback)``,
  ``await hub.aclose()``;
* from plain Python, as in the original Moksha: a hub created outside a
  running event loop starts at once on a loop in a background thread, and
  ``hub.subscribe(pattern, callback)``, ``hub.unsubscribe(callback)`` and
  ``hub.close()`` wait for that loop.

``hub.send_message(topic, body)`` from plain Python returns once the message
is queued, in order, on the hub's bounded outgoing queue
(:mod:`moksha.hub.outgoing`); it waits only while that queue is full.  A
message that then fails to send raises its error on the caller's next
``send_message``, on ``hub.flush()`` and on ``hub.close()`` (and is logged);
``send_message(..., wait=True)`` waits until the backends took the message
and raises at once.

Called on the hub's own event loop (from a callback or an ``async def``
consumer), the blocking calls cannot wait: ``send_message`` and ``subscribe``
then queue or schedule their work and return at once.  Made where another
event loop runs (a notebook), the hub starts on its own thread at the first
blocking call.

The asynchronous core (connecting, ``publish``, ``asubscribe``, stopping) is
:class:`~moksha.hub.core.HubCore`; this module adds the calls that do not
await, and the hub's own loop thread for plain Python.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from moksha.config import Config
from moksha.errors import HubClosed, MokshaError
from moksha.hub.backends import Backend
from moksha.hub.core import ORIGIN_HEADER, Callback, HubCore, HubState
from moksha.hub.loop_thread import LoopThread
from moksha.hub.outgoing import Outgoing
from moksha.message import Message
from moksha.topics import topics_of

# ORIGIN_HEADER and HubState live in moksha.hub.core; still importable from here.
__all__ = ["ORIGIN_HEADER", "HubState", "MokshaHub"]

log = logging.getLogger("moksha.hub")


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class MokshaHub(HubCore):
    """A client of the message bus.

    Args:
        config: a :class:`~moksha.config.Config`, a dict of settings (layered over
            the config file and ``MOKSHA_*`` environment), or None for the
            defaults (the embedded in-memory bus).
        backends: backend instances to use instead of those the config selects.
        schemas: schema classes (:class:`moksha.schema.Message` subclasses) to check
            messages against, besides those installed on the ``moksha.schema`` and
            ``fedora.messages`` entry points.

    Raises:
        ConfigError: a configuration value is wrong.
        BackendError: a backend could not start (sync use only; async callers
            see it from ``start``/``async with``).
    """

    def __init__(
        self,
        config: Config | Mapping[str, Any] | None = None,
        *,
        backends: Sequence[Backend] | None = None,
        schemas: Sequence[type[Any]] = (),
    ) -> None:
        super().__init__(config, backends=backends, schemas=schemas)
        self._thread: LoopThread | None = None
        if not _in_running_loop():
            self._start_in_background()

    def _start_in_background(self) -> None:
        """Start on a loop of the hub's own, in a background thread: the sync face."""
        self._thread = LoopThread()
        try:
            self._thread.run(self.start())
        except BaseException:
            self._thread.stop()
            self._thread = None
            raise

    def _start_if_new(self) -> None:
        """A sync call on a hub nobody started: made where a loop runs (Jupyter, ...)."""
        if self.state is HubState.NEW and self._main is None:
            log.debug("starting the hub in a background thread for a sync call")
            self._start_in_background()

    # -- life cycle -------------------------------------------------------

    def close(self) -> None:
        """Stop the hub (from plain Python).  Closing twice is harmless.

        What ``send_message`` queued is sent first (for at most
        ``moksha.shutdown_timeout`` seconds).

        Raises:
            Exception: a message queued by ``send_message`` failed to send and
                no call reported it yet (see :meth:`send_message`).
        """
        if self._main is None:  # never started
            self.state = HubState.CLOSED
            return
        if self._thread is not None:
            thread, self._thread = self._thread, None
            try:
                if self.state is not HubState.CLOSED:
                    thread.run(self.aclose())
            finally:
                thread.stop()
        elif self.state is not HubState.CLOSED:
            self._wait_for(self.aclose(), "await hub.aclose()")
        if self._outgoing is not None:
            self._outgoing.raise_failure()

    stop = close  # the original's name

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- publishing through the outgoing queue ----------------------------

    def _outgoing_message(
        self, topic: str, body: Any, headers: Mapping[str, str] | None, jsonify: bool
    ) -> Message:
        if self._bridging:
            headers = {**(headers or {}), ORIGIN_HEADER: self.hub_id}
        if jsonify:
            message = Message(topic, body, headers)
        else:
            message = Message(topic, headers=headers, payload=body)
        if self.schemas.active:
            message = self.schemas.outgoing(message)
        return message

    def _queue_for(self, topic: str) -> Outgoing:
        """The outgoing queue, once the hub runs (started now if it is new)."""
        if self.state is HubState.NEW:
            self._start_if_new()
        outgoing = self._outgoing
        if outgoing is None or not self._accepting:
            raise HubClosed(f"cannot publish on {topic!r}: the hub is {self.state.value}")
        return outgoing

    def send_message(
        self,
        topic: str | Sequence[str],
        message: Any,
        jsonify: bool = True,
        headers: Mapping[str, str] | None = None,
        *,
        wait: bool = False,
    ) -> None:
        """Publish ``message`` on ``topic`` (or on each of a list of topics).

        From plain Python this returns once the message is queued on the hub's
        outgoing queue, in order (waiting only while that queue is full);
        a message that then fails to send raises its error on the next
        ``send_message`` (which then queues nothing), :meth:`flush` or
        :meth:`close`.  On the hub's event loop it queues the message and returns.

        Args:
            topic: a topic, or a list of topics to publish the message on each.
            message: the body (a JSON value; ``str``/``bytes`` with ``jsonify=False``).
            jsonify: encode ``message`` as JSON (the default).
            headers: string headers to send along.
            wait: from plain Python, wait until every backend took the message
                and raise its error at once (the behaviour before the queue).

        Raises:
            HubClosed: the hub is not running.
            BackendUnavailable: the outgoing queue stayed full for
                ``moksha.publish_timeout`` seconds.
            ValidationError: the body does not match its topic's schema
                (``moksha.schema.mode = enforce``); nothing was queued.
            MokshaError: an earlier message queued by ``send_message`` failed
                to send (or, with ``wait=True``, this one did).
        """
        outgoing = self._outgoing
        if (
            outgoing is not None
            and self._accepting
            and type(topic) is str
            and jsonify
            and not (wait or self._bridging or outgoing.failures_pending)
            and threading.get_ident() != self._loop_thread_id
        ):
            # The common case, kept short: scripts publish in tight loops.
            built = Message(topic, message, headers)
            schemas = self.schemas
            if schemas.active and (headers or topic not in schemas.free):
                built = schemas.outgoing(built)
            outgoing.put(built, report=True)
            return
        for one_topic in topics_of(topic):
            outgoing = self._queue_for(one_topic)
            outgoing.raise_failure()
            built = self._outgoing_message(one_topic, message, headers, jsonify)
            if threading.get_ident() == self._loop_thread_id:
                outgoing.put_nowait(built)
            elif wait:
                outgoing.put_waited(built).result()
            else:
                outgoing.put(built, report=True)

    def post(self, topic: str, body: Any, *, headers: Mapping[str, str] | None = None) -> None:
        """Publish through the outgoing queue, from any thread; a failure is logged, not raised.

        This is what plugins' ``send_message`` uses.  From a thread it waits
        while the queue is full (see :mod:`moksha.hub.outgoing`); on the hub's
        loop it never waits.

        Raises:
            HubClosed: the hub is not running.
            BackendUnavailable: the outgoing queue stayed full for
                ``moksha.publish_timeout`` seconds.
        """
        outgoing = self._queue_for(topic)
        message = self._outgoing_message(topic, body, headers, True)
        if threading.get_ident() == self._loop_thread_id:
            outgoing.put_nowait(message)
        else:
            outgoing.put(message)

    def flush(self) -> None:
        """Wait until what ``send_message`` queued so far was sent (from plain Python).

        Raises:
            HubClosed: the hub is not running.
            Exception: a queued message failed to send (see :meth:`send_message`).
        """
        outgoing = self._queue_for("")
        if self._on_loop_thread():
            raise MokshaError(
                "this call blocks and this is the hub's event loop: await hub.aflush()"
            )
        outgoing.put_waited(None).result()
        outgoing.raise_failure()

    async def aflush(self) -> None:
        """Wait until what ``send_message`` queued so far was sent (on the hub's loop).

        Raises:
            HubClosed: the hub is not running.
            Exception: a queued message failed to send (see :meth:`send_message`).
        """
        outgoing = self._queue_for("")
        here = self._on_loop_thread()
        marker = outgoing.put_marker_here() if here else outgoing.put_waited(None)
        await asyncio.wrap_future(marker)
        outgoing.raise_failure()

    # -- subscribing ------------------------------------------------------

    def subscribe(self, topic: str, callback: Callback, *, jsonify: bool = True) -> None:
        """Sync form of :meth:`asubscribe` (the original's name)."""
        self._wait_or_schedule(self.asubscribe(topic, callback, jsonify=jsonify))

    def unsubscribe(self, callback: Callback) -> None:
        """Sync form of :meth:`aunsubscribe` (the original's name)."""
        self._wait_or_schedule(self.aunsubscribe(callback))

    # -- plumbing ---------------------------------------------------------

    def _on_loop_thread(self) -> bool:
        loop = self._require_loop()
        try:
            return asyncio.get_running_loop() is loop
        except RuntimeError:
            return False

    def _wait_for(self, coro: Coroutine[Any, Any, Any], instead: str) -> Any:
        """Run ``coro`` on the hub's loop from another thread and return its result."""
        try:
            loop = self._require_loop()
            if self._on_loop_thread():
                raise MokshaError(f"this call blocks and this is the hub's event loop: {instead}")
        except MokshaError:
            coro.close()
            raise
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def _wait_or_schedule(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Wait for ``coro`` from plain Python; on the hub's loop, schedule it and return."""
        try:
            self._start_if_new()
            loop = self._require_loop()
        except HubClosed:
            coro.close()
            raise
        if self._on_loop_thread():
            self._spawn(coro)
        else:
            asyncio.run_coroutine_threadsafe(coro, loop).result()
