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
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from moksha.app_db import AppDatabases
from moksha.config import Config
from moksha.errors import ConfigError, HubClosed, MokshaError
from moksha.hub import reactor
from moksha.hub.backends import Backend, Subscription, select_backends
from moksha.hub.loop_thread import LoopThread
from moksha.hub.outgoing import Outgoing
from moksha.hub.published import PublishedCounts
from moksha.message import Message, new_message_id
from moksha.schema import SchemaCheck, installed_schemas, schema_files
from moksha.schema.catalog import TopicCatalog
from moksha.topics import matches, topics_of

__all__ = ["ORIGIN_HEADER", "HubState", "MokshaHub"]

log = logging.getLogger("moksha.hub")

Callback = Callable[[Message], Awaitable[None] | None]

ORIGIN_HEADER = "moksha-origin"
"""Set on what a hub with several backends publishes: the hub's id (bridges skip it)."""


PUBLISH_WINDOW = 100
"""Publishes of the outgoing queue awaiting a broker's confirmation at once, at most."""


class HubState(enum.Enum):
    """Where a hub is in its life."""

    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    CLOSED = "closed"


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class MokshaHub:
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
        self.config = Config.coerce(config)
        if backends is None:
            backends = [cls(self.config) for cls in select_backends(self.config)]
        self.backends: list[Backend] = list(backends)
        if not self.backends:
            raise ConfigError("a hub needs at least one backend", key="moksha.backends")
        self.hub_id = f"{socket.gethostname()}:{os.getpid()}:{new_message_id()}"
        # Subscriptions go to the first backend; with several, bridges feed it the others'.
        self._receiving = self.backends[0]
        self._bridging = len(self.backends) > 1
        self.topics: dict[str, list[Callback]] = {}
        self._state = HubState.NEW
        self._accepting = False  # derived from the state, read on every publish
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: LoopThread | None = None
        self._main: asyncio.Task[None] | None = None
        self._stop_requested: asyncio.Event | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._callback_subscriptions: dict[Callback, list[Subscription]] = {}
        self.published = PublishedCounts()  # per topic, read by /metrics
        self.schemas = SchemaCheck(installed_schemas(), self.config.schema_mode)
        self.schemas.add_classes([*schema_files(self.config), *schemas])
        for backend in self.backends:
            backend.schemas = self.schemas.registry
        self.catalog = TopicCatalog(self.schemas.registry, self.published)
        self.app_databases = AppDatabases(self.config)  # engines of plugins' app_db
        self._callback_patterns: dict[Callback, list[str]] = {}
        self._outgoing: Outgoing | None = None
        self._stop_deadline = 0.0  # loop time by which stopping must be over
        self._loop_thread_id: int | None = None  # the thread the hub's loop runs in
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

    @property
    def state(self) -> HubState:
        """Where the hub is in its life."""
        return self._state

    @state.setter
    def state(self, state: HubState) -> None:
        self._state = state
        self._accepting = state in (HubState.RUNNING, HubState.STOPPING)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the hub runs on once started (its own thread's, from plain Python).

        Other threads reach it with ``asyncio.run_coroutine_threadsafe(hub.publish(...),
        hub.loop)``; None before :meth:`start`.
        """
        return self._loop

    async def start(self) -> None:
        """Connect the backends and start what the hub runs.

        Raises:
            MokshaError: the hub was started before.
            BackendError: a backend could not connect.
        """
        if self.state is not HubState.NEW:
            raise MokshaError(f"this hub was already started (it is {self.state.value})")
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        started: asyncio.Future[None] = self._loop.create_future()
        self._main = asyncio.create_task(self._run(started), name="moksha hub")
        try:
            await started
        except BaseException:
            with contextlib.suppress(BaseException):
                await self._main  # it failed too: collect it, the caller has the error
            raise

    async def _run(self, started: asyncio.Future[None]) -> None:
        assert self._stop_requested is not None
        loop = asyncio.get_running_loop()
        # Twisted-era plugins calling moksha.hub.reactor from worker threads find this loop.
        reactor.attach(loop)
        try:
            async with contextlib.AsyncExitStack() as stack:
                for backend in self.backends:
                    await stack.enter_async_context(backend)
                    if backend.connected:
                        log.info(
                            "backend %s connected", backend.name, extra={"backend": backend.name}
                        )
                    else:  # the backend logs each attempt, with its address and next delay
                        log.warning(
                            "backend %s is not connected yet; it keeps trying in the background",
                            backend.name,
                            extra={"backend": backend.name},
                        )
                self._tasks = await stack.enter_async_context(asyncio.TaskGroup())
                self._loop_thread_id = threading.get_ident()
                # One backend (the usual case): the queue calls it without a hop.
                send = self.backends[0].offer if len(self.backends) == 1 else self._send
                # Brokers confirm a window of publishes at once (the same 100 in flight
                # as amqp_prefetch's default); the memory bus finishes one at a time.
                ordered = all(b.capabilities.ordered_publishes for b in self.backends)
                self._outgoing = Outgoing(
                    self.config.outgoing_queue,
                    send,
                    loop,
                    self.config.publish_timeout,
                    window=PUBLISH_WINDOW if ordered else 1,
                )
                sender = self._tasks.create_task(self._outgoing.run(), name="moksha outgoing")
                self.state = HubState.RUNNING
                await self._on_start()
                started.set_result(None)
                await self._stop_requested.wait()
                self.state = HubState.STOPPING
                self._stop_deadline = loop.time() + self.config.shutdown_timeout
                await self._on_stop()
                for task in self._background:
                    task.cancel()
                sender.cancel()
        except BaseException as exc:
            if not started.done():
                # The task group wraps what failed; the caller wants the error itself.
                while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
                    exc = exc.exceptions[0]
                started.set_exception(exc)
            raise
        finally:
            self.state = HubState.CLOSED
            reactor.detach(loop)

    async def _on_start(self) -> None:
        """Start what runs inside the hub (subclasses add plugins)."""

    async def _on_stop(self) -> None:
        """Stop what runs inside the hub, before the backends close."""
        for subscriptions in self._callback_subscriptions.values():
            for subscription in subscriptions:
                await subscription.cancel()
        self._callback_subscriptions.clear()
        self._callback_patterns.clear()
        loop = asyncio.get_running_loop()
        if self._background:
            await asyncio.wait(self._background, timeout=self._stop_deadline - loop.time())
        if self._outgoing is not None:
            # Stop waiting threads first: a closed hub refuses their messages.
            self._accepting = False
            self._outgoing.abandon()
            await self._outgoing.drain(self._stop_deadline - loop.time())
        await asyncio.to_thread(self.app_databases.dispose)

    async def aclose(self) -> None:
        """Stop the hub and wait until it has stopped.  Closing twice is harmless."""
        if self._main is None:
            self.state = HubState.CLOSED
            return
        assert self._stop_requested is not None
        self._stop_requested.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._main)

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

    async def __aenter__(self) -> Self:
        if self.state is HubState.NEW:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- publishing -------------------------------------------------------

    async def publish(
        self,
        topic: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        jsonify: bool = True,
    ) -> Message:
        """Publish ``body`` on ``topic`` through every backend.

        Args:
            topic: the topic (no wildcards).
            body: a JSON value; with ``jsonify=False``, ``str``/``bytes`` sent as they are.
            headers: string headers to send along.
            jsonify: encode ``body`` as JSON (the default).

        Returns:
            The message as published (with its ``id``).

        Raises:
            HubClosed: the hub is not running.
            MessageError: the body cannot be encoded.
            ValidationError: the body does not match its topic's schema
                (``moksha.schema.mode = enforce``); nothing was sent.
            BackendError: a backend failed to send it.
        """
        if not self._accepting:
            raise HubClosed(f"cannot publish on {topic!r}: the hub is {self.state.value}")
        if self._bridging:
            headers = {**(headers or {}), ORIGIN_HEADER: self.hub_id}
        if jsonify:
            message = Message(topic, body, headers)
        else:
            message = Message(topic, headers=headers, payload=body)
        schemas = self.schemas
        if schemas.active and (headers or topic not in schemas.free):
            message = schemas.outgoing(message)
        if self.published.count(topic):  # a new topic: its first body is the example
            self.catalog.example(message)
        for backend in self.backends:
            waiting = backend.offer(message)
            if waiting is not None:
                await waiting
        return message

    async def _send(self, message: Message) -> None:
        for backend in self.backends:
            await backend.publish(message)

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

    async def asubscribe(self, pattern: str, callback: Callback, *, jsonify: bool = True) -> None:
        """Call ``callback(message)`` for every message whose topic matches ``pattern``.

        ``callback`` may be a plain function (called on the event loop: it must
        not block; use a :class:`~moksha.hub.api.Consumer` for slow work) or a
        coroutine function.  Its exceptions are logged.

        Args:
            pattern: a topic pattern (``*`` one word, ``#`` zero or more words).
            callback: receives each :class:`~moksha.message.Message`.
            jsonify: give the body decoded from JSON (default) or as raw text.
        """
        self._require_loop()
        is_async = inspect.iscoroutinefunction(callback)
        # A callback subscribed to overlapping patterns gets each message once:
        # from the subscription of the first of its patterns that matches.
        patterns = self._callback_patterns.setdefault(callback, [])
        earlier = len(patterns)
        patterns.append(pattern)

        async def handler(message: Message) -> None:
            if earlier and any(matches(p, message.topic) for p in patterns[:earlier]):
                return
            if not jsonify:
                message = message.raw()
            try:
                result = callback(message)
                if is_async:
                    await result  # type: ignore[misc]
            except Exception:
                log.exception("subscriber %r failed on %s", callback, message.topic)

        subscriptions = self._callback_subscriptions.setdefault(callback, [])
        subscriptions.append(await self._receiving.subscribe([pattern], handler))
        self.topics.setdefault(pattern, []).append(callback)

    async def arebind(self, callback: Callback, patterns: Sequence[str]) -> bool:
        """Give ``callback`` the messages of ``patterns`` from now on, in place of its own.

        Only where the backend can change a subscription's patterns in place
        (AMQP: one queue, bindings added and removed), so nothing arrives twice
        or out of order meanwhile; ``callback`` must have one subscription.

        Returns:
            True when done; False when the backend cannot (nothing changed).

        Raises:
            BackendError: the broker refused a binding.
        """
        self._require_loop()
        subscriptions = self._callback_subscriptions.get(callback, [])
        if len(subscriptions) != 1 or not await subscriptions[0].rebind(patterns):
            return False
        for pattern in self._callback_patterns.get(callback, []):
            callbacks = [c for c in self.topics.get(pattern, []) if c != callback]
            if callbacks:
                self.topics[pattern] = callbacks
            else:
                self.topics.pop(pattern, None)
        self._callback_patterns[callback] = list(patterns)
        for pattern in patterns:
            self.topics.setdefault(pattern, []).append(callback)
        return True

    async def aunsubscribe(self, callback: Callback) -> None:
        """Stop calling ``callback``, for every pattern it was subscribed to."""
        self._callback_patterns.pop(callback, None)
        for subscription in self._callback_subscriptions.pop(callback, []):
            await subscription.cancel()
        for pattern, callbacks in list(self.topics.items()):
            self.topics[pattern] = [c for c in callbacks if c != callback]
            if not self.topics[pattern]:
                del self.topics[pattern]

    def subscribe(self, topic: str, callback: Callback, *, jsonify: bool = True) -> None:
        """Sync form of :meth:`asubscribe` (the original's name)."""
        self._wait_or_schedule(self.asubscribe(topic, callback, jsonify=jsonify))

    def unsubscribe(self, callback: Callback) -> None:
        """Sync form of :meth:`aunsubscribe` (the original's name)."""
        self._wait_or_schedule(self.aunsubscribe(callback))

    # -- plumbing ---------------------------------------------------------

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or not self._accepting:
            raise HubClosed(f"the hub is {self.state.value}; start it first (or create a new one)")
        return self._loop

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

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background, owned by the hub; its failure is logged."""
        if self._tasks is None or self.state is HubState.CLOSED:
            coro.close()
            log.warning("dropped work scheduled after the hub closed")
            return
        task = self._tasks.create_task(self._logged(coro))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _logged(coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except Exception:
            log.exception("background hub work failed")
