"""The AMQP 1.0 backend's reactor side: everything that runs in proton's own thread.

:class:`Reactor` is the container's handler.  The asyncio side
(:class:`~moksha.hub.backends.amqp1.AMQP1Backend`) hands it commands with
:meth:`Reactor.submit` (an ``ApplicationEvent`` through an
:class:`~proton.reactor.EventInjector` wakes the container); it hands results
back through the backend's ``_notify`` (batched ``call_soon_threadsafe``).
Proton objects are only ever touched in this thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from proton import Delivery
from proton.handlers import MessagingHandler
from proton.reactor import ApplicationEvent, Backoff, EventInjector

from moksha.errors import BackendError, BackendUnavailable
from moksha.hub.backends.amqp1_wire import from_amqp1, to_amqp1
from moksha.message import Message

if TYPE_CHECKING:
    from moksha.hub.backends.amqp1 import AMQP1Backend

__all__ = ["JOIN_TIMEOUT", "Reactor", "resolve", "shut"]

log = logging.getLogger("moksha.hub.backends.amqp1")

JOIN_TIMEOUT = 5.0  # seconds a closing backend waits for the reactor's thread


class Reactor(MessagingHandler):
    """Everything that runs in the reactor's thread."""

    def __init__(self, backend: AMQP1Backend) -> None:
        super().__init__(prefetch=0, auto_accept=True)
        self.backend = backend
        self.injector = EventInjector()
        self.container: Any = None
        self.connection: Any = None
        self.sender: Any = None
        self.unsent: list[tuple[Message, asyncio.Future[None]]] = []
        self.unsettled: dict[Delivery, asyncio.Future[None]] = {}
        self._commands: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    # -- from the asyncio side (any thread) ----------------------------------------

    def submit(self, command: Callable[[], None]) -> None:
        with self._lock:
            wake = not self._commands
            self._commands.append(command)
        if wake:
            self.injector.trigger(ApplicationEvent("commands"))

    # -- reactor events (its thread) -----------------------------------------------

    def on_start(self, event: Any) -> None:
        self.container = event.container
        self.container.selectable(self.injector)
        backend = self.backend
        self.connection = self.container.connect(
            backend.url,
            reconnect=Backoff(initial=backend.config.reconnect_delay,
                              max_delay=backend.config.reconnect_max_delay),
            sasl_enabled=True,
            allowed_mechs="PLAIN ANONYMOUS",
            allow_insecure_mechs=True,
        )  # fmt: skip
        self.sender = self.container.create_sender(
            self.connection, f"/exchange/{backend.config.amqp_exchange}"
        )

    def on_commands(self, event: Any) -> None:
        with self._lock:
            commands, self._commands = self._commands, []
        for command in commands:
            try:
                command()
            except Exception:
                log.exception("amqp1: a command failed in the reactor thread")

    def on_connection_opened(self, event: Any) -> None:
        self.backend._notify(self.backend._opened)

    def on_transport_error(self, event: Any) -> None:
        condition = event.transport.condition
        self.backend._notify(self.backend._lost, str(condition.description if condition else ""))

    def on_link_opened(self, event: Any) -> None:
        waiting = getattr(event.link, "moksha_opened", None)
        if waiting is not None:
            self.backend._notify(resolve, waiting, None)
            event.link.moksha_opened = None

    def on_sendable(self, event: Any) -> None:
        self.flush()

    def flush(self) -> None:
        sender = self.sender
        sent = 0
        while self.unsent and sender is not None and sender.credit > 0:
            message, future = self.unsent[sent]
            self.unsent[sent] = None  # type: ignore[call-overload]
            sent += 1
            self.unsettled[sender.send(to_amqp1(message))] = future
            if sent == len(self.unsent):
                break
        if sent:
            del self.unsent[:sent]

    def on_accepted(self, event: Any) -> None:
        self._settled(event.delivery, None)

    def on_rejected(self, event: Any) -> None:
        self._settled(event.delivery, "the broker rejected it")

    def on_released(self, event: Any) -> None:
        self._settled(event.delivery, "the broker released it (no route?)")

    def _settled(self, delivery: Delivery, problem: str | None) -> None:
        future = self.unsettled.pop(delivery, None)
        if future is not None:
            error = BackendError(f"amqp1: publish failed: {problem}") if problem else None
            self.backend._notify(resolve, future, error)

    def on_message(self, event: Any) -> None:
        link = event.receiver.moksha_link
        message = from_amqp1(event.message, link.fallback_topic)
        self.backend._arrived(link, message, event.receiver)

    def on_disconnected(self, event: Any) -> None:
        condition = event.transport.condition if event.transport else None
        reason = f"{condition.name}: {condition.description}" if condition else "disconnected"
        self.backend._notify(self.backend._lost, reason)
        # Deliveries of the lost link are never settled now: their publishes fail (the
        # hub's outgoing queue retries them); what was not sent yet goes once re-attached.
        unsettled, self.unsettled = self.unsettled, {}
        lost = BackendUnavailable(f"amqp1: connection lost before the broker settled ({reason})")
        for future in unsettled.values():
            self.backend._notify(resolve, future, lost)


def resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def shut(reactor: Reactor) -> None:
    if reactor.connection is not None:
        reactor.connection.close()
    reactor.injector.close()
    if reactor.container is not None:
        reactor.container.stop()
