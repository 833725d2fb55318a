"""The AMQP 1.0 backend: python-qpid-proton against RabbitMQ's ``rabbitmq_amqp1_0`` plugin.

Selected by ``amqp1_url = amqp://guest:guest@127.0.0.1:5672`` (``amqps://``
for TLS); ``amqp1_prefetch`` is the credit of each receiving link.  Wire
format: :mod:`~moksha.hub.backends.amqp1_wire` -- on RabbitMQ, AMQP 1.0 and
AMQP 0-9-1 clients (and Moksha's ``amqp`` backend) see the same topics on
``amq.topic``.

No proton reactor and no thread: proton's protocol engine is driven from the
event loop by an asyncio Protocol (:mod:`~moksha.hub.backends.amqp1_engine`), so
deliveries and settlements are handled where the handlers run, without crossing
threads.  When the connection ends, the backend reconnects with backoff
(``reconnect_delay`` doubling up to ``reconnect_max_delay``) and re-attaches its
sending link and every subscription's link.

Publishing awaits the broker's settlement (``accepted``): a publish that
returned is on the broker.  A publish sent but not settled when the connection
ended fails (the hub's outgoing queue retries it); one not sent yet waits for
the next connection, within ``publish_timeout``.  Receiving: each subscription
gets a queue ``moksha.amqp1.<uuid>``, declared and bound to the exchange with its
patterns over AMQP 0-9-1 (:mod:`~moksha.hub.backends.amqp1_queues`, which says
why not the plugin's ``/topic/`` sources), and one receiving link on
``/amq/queue/<name>``; the broker filters with AMQP's own ``*``/``#`` and a
message matching several patterns is in the queue once.  The link's credit
(``amqp1_prefetch``) is given back only as the handler finishes messages: that
bounds what waits in this process.  The queues are deleted on cancel and close,
and by the broker (``x-expires``, 60 s unused) after a crash; a link that
reconnects within that time finds its queue with what arrived meanwhile (each
queue is declared again before its link is re-attached: one the broker expired
comes back empty).

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
import uuid
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import aio_pika

from moksha.errors import BackendError, BackendUnavailable
from moksha.hub.backends.amqp1_engine import ConnectionLost, Engine
from moksha.hub.backends.amqp1_options import Broker
from moksha.hub.backends.amqp1_queues import Queues
from moksha.hub.backends.amqp1_wire import decode, encode
from moksha.hub.backends.base import Backend, Capabilities, Handler, Subscription
from moksha.message import Message
from moksha.topics import literal_prefix, matches

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["AMQP1Backend"]

log = logging.getLogger(__name__)

_OPEN_TIMEOUT = 10.0
_CLOSE_TIMEOUT = 2.0  # for the broker to answer our close before the socket is dropped


class _Link(Subscription):
    """A handler's subscription: one queue bound with its patterns, one receiving link."""

    def __init__(self, backend: AMQP1Backend, patterns: Sequence[str], handler: Handler) -> None:
        self.patterns = tuple(patterns)
        self.handler = handler
        self.queue = f"moksha.amqp1.{uuid.uuid4().hex}"
        literal = len(patterns) == 1 and literal_prefix(patterns[0]) == patterns[0]
        self.fallback_topic = patterns[0] if literal else None
        self.engine: Engine | None = None  # the connection its receiver belongs to
        self.receiver: Any = None  # a proton Receiver
        self.attached = False  # the broker attached the receiver on self.engine
        self.finished = 0  # messages handled since credit was last given back
        self._backend = backend

    def accepts(self, topic: str) -> bool:
        """Whether ``topic`` matches one of the patterns (bindings may be broader)."""
        return any(matches(p, topic) for p in self.patterns)

    async def cancel(self) -> None:
        if not self.patterns:
            return
        self.patterns = ()
        self._backend._links.discard(self)
        if self.engine is not None:
            self.engine.detach(self.receiver)
        await self._backend._queues.delete(self.queue)


class AMQP1Backend(Backend):
    """AMQP 1.0 through proton's engine on the event loop (see the module docstring)."""

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
        self.broker = Broker.from_url(self.url)
        self._engine: Engine | None = None  # set while connected, links attached
        self._sender: Any = None  # the proton Sender on self._engine
        self._up = asyncio.Event()  # set while self._engine is
        self._keeper: asyncio.Task[None] | None = None  # reconnects
        self._dispatcher: asyncio.Task[None] | None = None
        self._links: set[_Link] = set()
        # Publishes not sent yet (no connection or no credit), in order; bounded by the
        # publishes the hub has in flight, each waiting for its own settlement.
        self._outbox: collections.deque[tuple[bytes, asyncio.Future[None]]] = collections.deque()
        # Deliveries not handled yet; bounded by the links' credit (amqp1_prefetch each).
        self._arrivals: collections.deque[tuple[_Link, Engine, bytes]] = collections.deque()
        self._arrival = asyncio.Event()
        self._queues = Queues(
            self._setup_url(), config.amqp_exchange, reconnect_delay=config.reconnect_delay
        )

    @classmethod
    def configured(cls, config: Config) -> bool:
        """Whether ``amqp1_url`` is set."""
        return bool(config.amqp1_url)

    @property
    def address(self) -> str:
        """The broker's host and port, without credentials (for messages)."""
        return str(self.broker)

    @property
    def connected(self) -> bool:
        return self._engine is not None

    async def connect(self) -> None:
        """Open the connection and the sending link, then keep them open until :meth:`close`.

        Raises:
            BackendUnavailable: the broker could not be reached or refused us in time.
        """
        if self._keeper is not None:
            return
        try:
            async with asyncio.timeout(_OPEN_TIMEOUT):
                engine = await self._open()
                await self._queues.open()
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
            await self.close()
            raise BackendUnavailable(f"amqp1: cannot reach {self.address}: {exc}") from exc
        log.info("amqp1: connected to %s", self.address)
        self._keeper = asyncio.create_task(self._keep(engine), name="amqp1 reconnect")
        self._dispatcher = asyncio.create_task(self._dispatch(), name="amqp1 deliveries")

    async def _open(self) -> Engine:
        """Connect, open AMQP, attach the sender and every subscription's receiver.

        Raises:
            OSError: the connection failed or ended (:class:`ConnectionLost`), or the
                broker refused a link (:class:`ConnectionRefusedError`).
            BackendError: a subscription's queue could not be declared again.
        """
        loop = asyncio.get_running_loop()
        broker = self.broker
        _, engine = await loop.create_connection(
            lambda: Engine(broker, on_credit=self._send_waiting, on_lost=self._lost),
            broker.host,
            broker.port,
            ssl=broker.ssl_context(),
        )
        try:
            await engine.opened
            sender, attached = engine.sender(f"/exchange/{self.config.amqp_exchange}")
            links = list(self._links)
            for link in links:  # a queue the broker expired while we were away: again, empty
                await self._queues.declare(link.queue, link.patterns)
            await asyncio.gather(attached, *(self._attach(link, engine) for link in links))
        except BaseException:
            engine.abort()
            raise
        self._engine, self._sender = engine, sender
        self._up.set()
        self._send_waiting()
        return engine

    def _lost(self, engine: Engine) -> None:
        """From the engine, at once: it ended (publishes wait from now on)."""
        if engine is self._engine:
            self._engine = self._sender = None
            self._up.clear()

    async def _keep(self, engine: Engine) -> None:
        """Reconnect whenever the connection ends, with backoff, until :meth:`close`."""
        while True:  # until close() cancels this task
            reason = await asyncio.shield(engine.lost)  # cancelling us must not cancel it
            log.warning("amqp1: connection to %s lost (%s); reconnecting", self.address, reason)
            delay = self.config.reconnect_delay
            while True:  # one attempt per delay, the delay doubling up to its maximum
                await asyncio.sleep(delay)
                try:
                    async with asyncio.timeout(_OPEN_TIMEOUT):
                        engine = await self._open()
                    break
                except (TimeoutError, OSError, BackendError) as exc:
                    log.info("amqp1: %s still unreachable (%s)", self.address, exc)
                    delay = min(2 * delay, self.config.reconnect_max_delay)
            log.info("amqp1: connected to %s again", self.address)

    async def _attach(self, link: _Link, engine: Engine) -> None:
        """Attach ``link``'s receiver on ``engine`` with full credit; wait for the broker."""
        on_message = partial(self._arrived, link, engine)
        link.engine, link.attached, link.finished = engine, False, 0
        link.receiver, attached = engine.receiver(
            f"/amq/queue/{link.queue}",
            f"moksha-{link.queue}",
            self.config.amqp1_prefetch,
            on_message,
        )
        await attached
        link.attached = link.engine is engine

    def _setup_url(self) -> str:
        """The AMQP 0-9-1 URL of the same broker (queues are declared over it)."""
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{rest.rstrip('/')}/"

    async def close(self) -> None:
        for task in (self._keeper, self._dispatcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._keeper = self._dispatcher = None
        engine = self._engine
        if engine is not None:
            engine.close()
            try:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await asyncio.shield(engine.lost)
            except TimeoutError:
                engine.abort()
        self._links.clear()
        await self._queues.close()
        closed = BackendUnavailable("amqp1: closed before the broker settled it")
        while self._outbox:
            _, settled = self._outbox.popleft()
            if not settled.done():
                settled.set_exception(closed)

    async def publish(self, message: Message) -> None:
        """Send ``message`` and wait until the broker accepted it.

        Raises:
            BackendUnavailable: not connected, or the connection ended before the
                broker settled it.
            BackendError: the broker refused it, or did not settle it in time.
        """
        if self._keeper is None:
            raise BackendUnavailable(f"amqp1: not connected to {self.address}")
        settled = asyncio.get_running_loop().create_future()
        self._outbox.append((encode(message), settled))  # a bad body raises here
        self._send_waiting()
        try:
            async with asyncio.timeout(self.config.publish_timeout):
                await settled
        except TimeoutError as exc:
            raise BackendError(f"amqp1: {self.address} did not settle a publish") from exc
        except ConnectionLost as exc:
            raise BackendUnavailable(str(exc)) from exc
        except ConnectionRefusedError as exc:
            raise BackendError(f"amqp1: {exc}") from exc

    def _send_waiting(self) -> None:
        """Send what the outbox holds, as far as the sender's credit goes."""
        engine, sender, outbox = self._engine, self._sender, self._outbox
        if engine is None or sender is None:
            return
        credit = sender.credit
        while outbox and credit > 0:  # bounded by the outbox
            payload, settled = outbox.popleft()
            if not settled.done():  # else its publish timed out: not sent at all
                engine.send(sender, payload, settled)
                credit -= 1

    async def subscribe(
        self,
        patterns: Sequence[str],
        handler: Handler,
        *,
        group: str | None = None,
        concurrency: int = 1,
    ) -> Subscription:
        """A queue bound with ``patterns`` and a link reading it; ``group`` is ignored.

        Returns once the link is attached (the broker delivers from then on).

        Raises:
            BackendUnavailable: not connected.
            BackendError: the queue could not be declared, or the link not attached in time.
        """
        if self._keeper is None:
            raise BackendUnavailable(f"amqp1: not connected to {self.address}")
        link = _Link(self, patterns, handler)
        await self._queues.declare(link.queue, link.patterns)
        self._links.add(link)  # from now on every new connection attaches it too
        try:
            async with asyncio.timeout(_OPEN_TIMEOUT):
                while not (link.attached and link.engine is self._engine):  # bounded: timeout
                    await self._up.wait()
                    engine = self._engine
                    if engine is not None and link.engine is not engine:
                        with contextlib.suppress(ConnectionLost):  # the next one attaches it
                            await self._attach(link, engine)
        except (TimeoutError, ConnectionRefusedError) as exc:
            await link.cancel()
            raise BackendError(f"amqp1: {self.address} did not attach {list(patterns)}") from exc
        return link

    def _arrived(self, link: _Link, engine: Engine, payload: bytes) -> None:
        """From the engine: a message for ``link`` (the dispatcher wakes once per read)."""
        self._arrivals.append((link, engine, payload))
        self._arrival.set()

    async def _dispatch(self) -> None:
        """Hand each arrival to its handler in order, and give the credit back."""
        half = max(1, self.config.amqp1_prefetch // 2)
        arrivals = self._arrivals
        while True:  # until close() cancels this task
            await self._arrival.wait()
            self._arrival.clear()
            while arrivals:  # bounded by the links' credit
                link, engine, payload = arrivals.popleft()
                try:
                    message = decode(payload, link.fallback_topic)
                    if link.patterns and link.accepts(message.topic):
                        waiting = link.handler(message)  # base.deliver, minus a coroutine
                        if waiting is not None:
                            await waiting
                except Exception:
                    log.exception("amqp1: subscriber %r failed on a message", link.handler)
                if engine is link.engine:  # else it came on a connection since lost
                    link.finished += 1
                    if link.finished >= half:
                        engine.flow(link.receiver, link.finished)
                        link.finished = 0
