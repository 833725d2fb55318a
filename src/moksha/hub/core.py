"""The hub's asynchronous core: backends connected, publish, subscribe, a clean stop.

:class:`HubCore` is the part of :class:`~moksha.hub.client.MokshaHub` that
runs on the hub's event loop and is awaited: ``start``/``aclose`` (and
``async with``), ``publish``, ``asubscribe``/``arebind``/``aunsubscribe``.
While it runs it owns a task group (the outgoing queue's sender, work
scheduled by sync calls) and the bounded outgoing queue
(:mod:`moksha.hub.outgoing`).  :class:`~moksha.hub.client.MokshaHub` adds the
calls that do not await (the original's sync API, and plugins'
``send_message``); :class:`~moksha.hub.central.CentralMokshaHub` adds the
plugins through :meth:`HubCore._on_start` and :meth:`HubCore._on_stop`.
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
from moksha.hub.outgoing import Outgoing
from moksha.hub.published import PublishedCounts
from moksha.message import Message, new_message_id
from moksha.schema import SchemaCheck, installed_schemas, schema_files
from moksha.schema.catalog import TopicCatalog
from moksha.topics import matches

__all__ = ["ORIGIN_HEADER", "PUBLISH_WINDOW", "Callback", "HubCore", "HubState"]

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


class HubCore:
    """The async core of :class:`~moksha.hub.client.MokshaHub` (see the module docstring).

    Not used on its own: its arguments and errors are MokshaHub's.
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

    # -- plumbing ---------------------------------------------------------

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or not self._accepting:
            raise HubClosed(f"the hub is {self.state.value}; start it first (or create a new one)")
        return self._loop

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
