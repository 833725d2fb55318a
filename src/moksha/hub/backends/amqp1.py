"""The AMQP 1.0 backend: python-qpid-proton against RabbitMQ's ``rabbitmq_amqp1_0`` plugin.

Selected by ``amqp1_url = amqp://guest:guest@127.0.0.1:5672`` (``amqps://``
for TLS); ``amqp1_prefetch`` is the credit of each receiving link.  Wire
format: :mod:`~moksha.hub.backends.amqp1_wire` -- on RabbitMQ, AMQP 1.0 and
AMQP 0-9-1 clients (and Moksha's ``amqp`` backend) see the same topics on
``amq.topic``.

Proton's reactor is not asyncio: as its documentation recommends for use from
other threads, its :class:`~proton.reactor.Container` runs in a thread of its
own and is only ever touched there.  The asyncio side hands it work through an
:class:`~proton.reactor.EventInjector` (an ``ApplicationEvent`` wakes the
reactor, which runs the queued commands); the reactor hands deliveries and
settlements back with ``loop.call_soon_threadsafe``, a batch per wake-up.

Publishing awaits the broker's settlement (``accepted``): a publish that
returned is on the broker.  Receiving: each subscription gets a queue
``moksha.amqp1.<uuid>``, declared and bound to the exchange with its patterns
over AMQP 0-9-1 (aio-pika, the same broker), and one receiving link on
``/amq/queue/<name>``; the broker filters with AMQP's own ``*``/``#`` and a
message matching several patterns is in the queue once.  The link's credit
(``amqp1_prefetch``) is given back only as the handler finishes messages: that
bounds what waits in this process.

Why not the plugin's ``/topic/<pattern>`` sources: RabbitMQ 3.10 never deletes
their server-named queues (not on detach, not on close: rabbitmq-server
#2588; measured here, a queue bound with ``#`` kept filling), and they cannot
be re-attached after a reconnection.  Moksha's queues are deleted on cancel and
close, and by the broker (``x-expires``, 60 s unused) after a crash; a link that
reconnects within that time finds its queue with what arrived meanwhile.

What this backend does not do: consumer groups do not share work and keep
nothing while no hub runs (``group`` is ignored, ``Capabilities.durable`` is
false), and messages are accepted when they arrive (no redelivery: retries
happen in the hub's memory).  AMQP 0-9-1 headers do not reach AMQP 1.0
receivers (the plugin drops them; the routing key arrives as ``subject``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import aio_pika
from proton.reactor import Container

from moksha.errors import BackendError, BackendUnavailable
from moksha.hub.backends.amqp1_reactor import JOIN_TIMEOUT, Reactor, resolve, shut
from moksha.hub.backends.base import Backend, Capabilities, Handler, Subscription, deliver
from moksha.message import Message
from moksha.topics import literal_prefix, matches

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["AMQP1Backend"]

log = logging.getLogger(__name__)

_OPEN_TIMEOUT = 10.0
_QUEUE_EXPIRES_MS = 60_000  # a subscription's queue, left unused this long, is deleted


class _Link(Subscription):
    """A handler's subscription: one queue bound with its patterns, one receiving link."""

    def __init__(self, backend: AMQP1Backend, patterns: Sequence[str], handler: Handler) -> None:
        self.patterns = tuple(patterns)
        self.handler = handler
        self.queue = f"moksha.amqp1.{uuid.uuid4().hex}"
        self._backend = backend
        self.receivers: list[Any] = []  # proton Receivers: touched in the reactor thread only
        literal = len(patterns) == 1 and literal_prefix(patterns[0]) == patterns[0]
        self.fallback_topic = patterns[0] if literal else None

    def accepts(self, topic: str) -> bool:
        """Whether ``topic`` matches one of the patterns (bindings may be broader)."""
        return any(matches(p, topic) for p in self.patterns)

    async def cancel(self) -> None:
        if not self.patterns:
            return
        self.patterns = ()
        await self._backend._call(self._detach)
        await self._backend._delete_queue(self.queue)

    def _detach(self) -> None:
        for receiver in self.receivers:
            receiver.close()
        self.receivers = []


class AMQP1Backend(Backend):
    """AMQP 1.0 through a proton reactor in its own thread (see the module docstring)."""

    name = "amqp1"
    capabilities = Capabilities(
        acknowledgements=False,
        native_wildcards=True,
        durable=False,
        cross_process=True,
        ordered_publishes=True,
    )

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.url = config.amqp1_url or "amqp://guest:guest@127.0.0.1:5672"
        self._reactor: Reactor | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open: asyncio.Future[None] | None = None
        self._is_open = False
        # Arrivals, appended by the reactor's thread (deque.append is atomic) and drained
        # by the dispatcher; bounded by the links' credit (amqp1_prefetch each).
        self._arrivals: collections.deque[tuple[_Link, Message, Any]] = collections.deque()
        self._arrival = asyncio.Event()
        self._wake_pending = False
        self._setup: aio_pika.abc.AbstractConnection | None = None  # declares the queues
        self._queues: set[str] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._finished: dict[Any, int] = {}
        self._batch: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self._batch_lock = threading.Lock()  # receiver -> messages handled since its last credit

    @classmethod
    def configured(cls, config: Config) -> bool:
        """Whether ``amqp1_url`` is set."""
        return bool(config.amqp1_url)

    @property
    def address(self) -> str:
        """The broker's host and port, without credentials (for messages)."""
        return self.url.partition("://")[2].rpartition("@")[2]

    @property
    def connected(self) -> bool:
        return self._is_open

    async def connect(self) -> None:
        """Start the reactor thread and wait until the connection is open.

        Raises:
            BackendUnavailable: the broker did not open the connection in time.
        """
        if self._reactor is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._open = self._loop.create_future()
        reactor = Reactor(self)
        self._reactor = reactor
        container = Container(reactor)
        self._thread = threading.Thread(target=container.run, name="amqp1 reactor", daemon=True)
        self._thread.start()
        self._dispatcher = asyncio.create_task(self._dispatch(), name="amqp1 deliveries")
        try:
            async with asyncio.timeout(_OPEN_TIMEOUT):
                await self._open
                self._setup = await aio_pika.connect_robust(self._setup_url())
        except (TimeoutError, BackendUnavailable, aio_pika.exceptions.AMQPError, OSError) as exc:
            await self.close()
            raise BackendUnavailable(f"amqp1: cannot reach {self.address}: {exc}") from exc

    def _setup_url(self) -> str:
        """The AMQP 0-9-1 URL of the same broker (queues are declared over it)."""
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{rest.rstrip('/')}/"

    async def _declare(self, link: _Link) -> None:
        """Declare ``link``'s queue and bind it to the exchange with its patterns.

        Not a ``/topic/`` source: the plugin never deletes those queues (rabbitmq-server
        #2588), and they cannot be re-attached after a reconnection.  This one is
        deleted on cancel and close, and by the broker ``x-expires`` after it is left
        unused (a crashed hub); a reconnection within that time finds it, messages kept.
        """
        if self._setup is None:
            raise BackendUnavailable(f"amqp1: not connected to {self.address}")
        try:
            channel = await self._setup.channel()
            async with channel:
                queue = await channel.declare_queue(
                    link.queue, durable=False, arguments={"x-expires": _QUEUE_EXPIRES_MS}
                )
                self._queues.add(link.queue)
                for pattern in dict.fromkeys(broker_pattern(p) for p in link.patterns):
                    await queue.bind(self.config.amqp_exchange, pattern)
        except aio_pika.exceptions.AMQPError as exc:
            raise BackendError(
                f"amqp1: could not set up a queue for {link.patterns}: {exc}"
            ) from exc

    async def _delete_queue(self, name: str) -> None:
        self._queues.discard(name)
        if self._setup is None or self._setup.is_closed:
            return  # x-expires deletes it
        try:
            async with asyncio.timeout(_OPEN_TIMEOUT / 2):
                channel = await self._setup.channel()
                async with channel:
                    await channel.queue_delete(name)
        except Exception as exc:  # best effort: x-expires deletes it anyway
            log.info("amqp1: queue %s left for the broker to expire (%s)", name, exc)

    async def close(self) -> None:
        for name in list(self._queues):
            await self._delete_queue(name)
        setup, self._setup = self._setup, None
        if setup is not None:
            with contextlib.suppress(aio_pika.exceptions.AMQPError, OSError):
                await setup.close()
        reactor, self._reactor = self._reactor, None
        if reactor is not None:
            reactor.submit(lambda: shut(reactor))
            thread = self._thread
            if thread is not None:
                await asyncio.to_thread(thread.join, JOIN_TIMEOUT)
            for future in [*reactor.unsettled.values(), *(f for _, f in reactor.unsent if f)]:
                resolve(future, BackendUnavailable("amqp1: closed before the broker settled it"))
        self._is_open = False
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None

    def _reactor_or_raise(self) -> Reactor:
        if self._reactor is None:
            raise BackendUnavailable(f"amqp1: not connected to {self.address}")
        return self._reactor

    async def _call(self, command: Callable[[], None]) -> None:
        """Run ``command`` in the reactor thread and wait until it ran."""
        reactor = self._reactor_or_raise()
        assert self._loop is not None
        done = self._loop.create_future()

        def run() -> None:
            try:
                command()
            finally:
                self._notify(resolve, done, None)

        reactor.submit(run)
        await done

    def _notify(self, callback: Callable[..., None], *args: Any) -> None:
        """From the reactor thread: run ``callback(*args)`` on the event loop.

        Calls are batched: one wake-up of the loop runs every call queued since
        (a wake-up per settlement or message costs more than the work itself).
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._batch_lock:
            wake = not self._batch
            self._batch.append((callback, args))
        if wake:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._run_batch)

    def _run_batch(self) -> None:
        with self._batch_lock:
            batch, self._batch = self._batch, []
        for callback, args in batch:
            callback(*args)

    def _opened(self) -> None:
        if not self._is_open:
            log.info("amqp1: connected to %s", self.address)
        self._is_open = True
        if self._open is not None:
            resolve(self._open, None)

    def _lost(self, reason: str) -> None:
        if self._is_open:
            log.warning("amqp1: connection to %s lost (%s); reconnecting", self.address, reason)
        self._is_open = False
        if self._open is not None and not self._open.done():
            self._open.set_exception(BackendUnavailable(reason or "connection refused"))

    async def publish(self, message: Message) -> None:
        """Send ``message`` and wait until the broker accepted it.

        Raises:
            BackendError: not connected, or the broker refused it.
        """
        reactor = self._reactor_or_raise()
        assert self._loop is not None
        settled = self._loop.create_future()
        message.payload  # noqa: B018 -- encode here: a bad body raises in the caller

        def send() -> None:
            reactor.unsent.append((message, settled))
            reactor.flush()

        reactor.submit(send)
        try:
            async with asyncio.timeout(self.config.publish_timeout):
                await settled
        except TimeoutError as exc:
            raise BackendError(f"amqp1: {self.address} did not settle a publish") from exc

    async def subscribe(
        self,
        patterns: Sequence[str],
        handler: Handler,
        *,
        group: str | None = None,
        concurrency: int = 1,
    ) -> Subscription:
        """One receiving link on ``/topic/<pattern>`` per pattern; ``group`` is ignored.

        Returns once every link is attached (the broker bound its queue).

        Raises:
            BackendError: not connected, or the links did not attach in time.
        """
        link = _Link(self, patterns, handler)
        assert self._loop is not None
        opened = self._loop.create_future()
        reactor = self._reactor_or_raise()
        credit = self.config.amqp1_prefetch
        await self._declare(link)

        def attach() -> None:
            receiver = reactor.container.create_receiver(
                reactor.connection,
                source=f"/amq/queue/{link.queue}",
                name=f"moksha-{link.queue}",
            )
            receiver.moksha_link = link
            receiver.moksha_opened = opened
            receiver.flow(credit)
            link.receivers.append(receiver)

        await self._call(attach)
        try:
            async with asyncio.timeout(_OPEN_TIMEOUT):
                await opened
        except TimeoutError as exc:
            await link.cancel()
            raise BackendError(f"amqp1: {self.address} did not attach {list(patterns)}") from exc
        return link

    def _arrived(self, link: _Link, message: Message, receiver: Any) -> None:
        """From the reactor thread: a message for ``link`` (one wake-up per batch)."""
        self._arrivals.append((link, message, receiver))
        if not self._wake_pending:
            self._wake_pending = True
            self._notify(self._arrival.set)

    async def _dispatch(self) -> None:
        """Hand each arrival to its handler in order, and give the credit back."""
        half = max(1, self.config.amqp1_prefetch // 2)
        arrivals = self._arrivals
        while True:
            await self._arrival.wait()
            self._arrival.clear()
            self._wake_pending = False  # before draining: a later arrival wakes us again
            while arrivals:
                link, message, receiver = arrivals.popleft()
                if link.accepts(message.topic):
                    try:
                        await deliver(link.handler, message)
                    except Exception:
                        log.exception("subscriber %r failed on %s", link.handler, message.topic)
                done = self._finished.get(receiver, 0) + 1
                if done >= half and self._reactor is not None:
                    self._reactor.submit(partial(receiver.flow, done))
                    done = 0
                self._finished[receiver] = done


def broker_pattern(pattern: str) -> str:
    """``pattern`` as the plugin can bind it: a word with non-ASCII characters becomes ``*``.

    RabbitMQ 3.10's plugin drops the connection on a non-ASCII source address;
    the broader binding is narrowed again here (:meth:`_Link.first_match`).

    >>> broker_pattern("a.*.事件.#"), broker_pattern("a.b")
    ('a.*.*.#', 'a.b')
    """
    return ".".join(word if word.isascii() else "*" for word in pattern.split("."))
