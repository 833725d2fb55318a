"""The contract every message transport implements.

A backend is an async context manager: entering it connects, leaving it
closes.  While connected it can :meth:`~Backend.publish` a
:class:`~moksha.message.Message` and :meth:`~Backend.subscribe` a
:data:`Handler` to topic patterns.  A backend hands each delivery to the
handler with :func:`deliver`, and a backend with acknowledgements acks the
message once that returns and nacks it when it raises.

Patterns follow :mod:`moksha.topics` on every backend: a transport that cannot
filter ``*`` / ``#`` itself filters with :class:`moksha.topics.TopicRouter`.

What a backend can do is declared in :class:`Capabilities`, so the hub never
needs to ask which backend it has.

Durable subscriptions follow the code.  A backend whose subscriptions with a
``group`` outlive the hub (``Capabilities.durable``: AMQP queues, STOMP durable
subscriptions, JetStream durable consumers, Redis Streams groups, MQTT
persistent sessions) must keep that broker-side state equal to what the
running code asks for:

1. when :meth:`Backend.subscribe` starts a group, the broker delivers to it
   exactly the topics of ``patterns`` (bindings / filter subjects /
   subscriptions added *and removed*), united with the patterns of other
   releases of the same group that are still running (a rolling upgrade must
   not flap between two sets);
2. a message queued before a pattern was removed is never handed to the
   handler: it is dead-lettered with the reason, or left for an operator and
   documented;
3. :meth:`Backend.durable_queues` lists what the backend keeps for Moksha
   (depth, consumers, patterns, group) and :meth:`Backend.delete_durable_queue`
   deletes one of them and nothing Moksha did not create (``moksha queues``).

``tests/hub/backends/test_durable_contract.py`` checks that every durable
backend implements 3.  Today: AMQP follows all three
(:mod:`~moksha.hub.backends.amqp_bindings`); STOMP follows 2 always, and 1
and 3 on RabbitMQ with ``stomp_amqp_url``
(:mod:`~moksha.hub.backends.stomp_bindings`).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, Self

from moksha.errors import BackendError
from moksha.message import Message

if TYPE_CHECKING:
    from moksha.config import Config
    from moksha.schema import SchemaRegistry

__all__ = [
    "DEAD_LETTER_HEADER",
    "DEAD_LETTER_REASON_HEADER",
    "Backend",
    "Capabilities",
    "DurableQueue",
    "FanOutSubscription",
    "Handler",
    "Subscription",
    "deliver",
]

DEAD_LETTER_HEADER = "moksha-dead-letter"
"""Set on a dead letter: the topic it was published on (as on the hub's dead letters)."""
DEAD_LETTER_REASON_HEADER = "moksha-dead-letter-reason"
"""Set on a message a backend dead-lettered: why, as a sentence."""

Handler = Callable[[Message], Awaitable[None] | None]
"""Receives one delivered message; raising means "not processed".

It returns an awaitable to wait on, or None when it finished at once (a fast
path: queuing a message for a consumer costs no coroutine).  Backends call it
through :func:`deliver`.
"""


async def deliver(handler: Handler, message: Message) -> None:
    """Hand ``message`` to ``handler`` and wait until it is done with it."""
    waiting = handler(message)
    if waiting is not None:
        await waiting


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend offers beyond publish/subscribe.

    Attributes:
        acknowledgements: deliveries are acked only once the handler returned,
            nacked (and redelivered) when it raised.
        native_wildcards: the broker itself filters ``*`` and ``#`` patterns.
        durable: messages wait in the broker for a consumer group while no hub runs.
        cross_process: other processes can see what this backend publishes.
        ordered_publishes: publishes started one after the other keep their
            order even when each is awaited apart (one channel whose
            confirmations arrive later), so the hub may have several in flight.
        headers: a message's id, timestamp and headers reach its subscribers
            (bridges between backends rely on them to recognise their own
            messages coming back).
    """

    acknowledgements: bool = False
    native_wildcards: bool = False
    durable: bool = False
    cross_process: bool = False
    ordered_publishes: bool = False
    headers: bool = True


@dataclass(frozen=True, slots=True)
class DurableQueue:
    """A durable queue (group, durable consumer, session) a backend keeps for Moksha.

    Attributes:
        name: the broker's name for it (what ``moksha queues prune`` deletes).
        group: the consumer group it serves (a consumer class's dotted path).
        depth: messages waiting in it.
        consumers: consumers attached right now (hubs running the group).
        patterns: the topic patterns it receives.
        dead_letters: messages dead-lettered from it because their pattern was removed.
    """

    name: str
    group: str
    depth: int
    consumers: int
    patterns: tuple[str, ...]
    dead_letters: int = 0


class Subscription(abc.ABC):
    """A handler subscribed to patterns on one backend; cancel it to stop deliveries."""

    patterns: tuple[str, ...]

    @abc.abstractmethod
    async def cancel(self) -> None:
        """Stop deliveries to the handler.  Cancelling twice is harmless."""

    async def rebind(self, patterns: Sequence[str]) -> bool:
        """Receive ``patterns`` from now on instead, in place, where the backend can.

        A backend with a broker-side queue per subscription (AMQP) binds the new
        patterns and unbinds the old on the same queue, so nothing arrives twice
        and order holds.  The default cannot, and changes nothing.

        Returns:
            True when the subscription now receives exactly ``patterns``.
        """
        return False

    async def waiting(self) -> int | None:
        """How many messages wait in the broker for this subscription; None where unknown.

        The hub reads it every ``moksha.queue_depth_interval`` seconds for the
        dashboard, ``/metrics`` and ``/ready``.  Backends with queues override it.
        """
        return None


class FanOutSubscription(Subscription):
    """A handler on patterns that the backend routes itself; ``drop`` forgets them on cancel.

    Args:
        patterns: what the handler receives.
        handler: the handler.
        drop: the backend's ``drop(patterns, handler)``: stop routing (and unsubscribe
            what no other handler needs).
    """

    def __init__(
        self,
        patterns: Sequence[str],
        handler: Handler,
        drop: Callable[[Sequence[str], Handler], Awaitable[None]],
    ) -> None:
        self.patterns = tuple(patterns)
        self._handler = handler
        self._drop = drop

    async def cancel(self) -> None:
        patterns, self.patterns = self.patterns, ()
        await self._drop(patterns, self._handler)


class Backend(abc.ABC):
    """A message transport: memory, AMQP, STOMP, ZeroMQ, ...

    Subclasses set :attr:`name` and :attr:`capabilities`, implement the abstract
    methods, and are registered on the ``moksha.backend`` entry-point group.
    """

    name: ClassVar[str]
    capabilities: Capabilities = Capabilities()
    """What the backend offers; a class default that an instance may narrow from its config."""

    def __init__(self, config: Config) -> None:
        self.config = config
        # The hub's schema registry (set by the hub): for wire formats that carry
        # schema metadata (fedora-messaging's headers on AMQP).
        self.schemas: SchemaRegistry | None = None

    @classmethod
    def configured(cls, config: Config) -> bool:
        """Whether ``config`` asks for this backend (e.g. ``amqp_broker`` is set).

        Backends that return False here are used only when named in
        ``moksha.backends``.
        """
        return False

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection.

        Raises:
            BackendUnavailable: the broker cannot be reached.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection; pending deliveries are abandoned."""

    @abc.abstractmethod
    async def publish(self, message: Message) -> None:
        """Send ``message`` to everyone subscribed to a pattern matching its topic.

        Raises:
            BackendError: the transport failed.
        """

    def offer(self, message: Message) -> Awaitable[None] | None:
        """Start publishing ``message``: None when that finished at once, else an awaitable.

        The hub publishes through this; the default simply returns
        :meth:`publish`'s coroutine.  A backend that can often finish without
        waiting (the memory bus) overrides it to spare a coroutine per message.
        """
        return self.publish(message)

    async def requeue(self, message: Message, group: str) -> bool:
        """Put ``message`` back on the queue of consumer group ``group`` only (a retry).

        The hub retries a failed delivery this way on backends with
        acknowledgements, so the attempt count in its headers survives a
        redelivery or a restart.  ``message.topic`` must arrive unchanged.

        Returns:
            False when this backend keeps no queue per group (the default): the
            hub then retries in memory.

        Raises:
            BackendError: the broker refused it or could not be reached.
        """
        return False

    @abc.abstractmethod
    async def subscribe(
        self,
        patterns: Sequence[str],
        handler: Handler,
        *,
        group: str | None = None,
        concurrency: int = 1,
    ) -> Subscription:
        """Deliver every message whose topic matches one of ``patterns`` to ``handler``.

        A message matching several of ``patterns`` is delivered once.

        Args:
            patterns: topic patterns (``*`` one word, ``#`` zero or more).
            handler: awaited once per message.
            group: a consumer-group name (letters, digits, ``.``, ``_``, ``-``,
                ``:``); subscriptions sharing a group on a backend with durable
                queues share the work (each message is handled once per
                group).  Ignored where it means nothing.
            concurrency: on a backend with acknowledgements, how many
                deliveries the handler may have in flight at once (the broker's
                prefetch is at least this); each is acknowledged when its own
                handler call returns, so with more than 1 they finish out of
                order.  Backends without acknowledgements never wait for the
                handler to finish and ignore it.
        """

    @property
    def connected(self) -> bool:
        """Whether the backend currently has a working connection."""
        return True

    async def durable_queues(self) -> list[DurableQueue]:
        """The durable queues Moksha created on this broker (see the module docstring).

        The default, for backends without durable subscriptions, is none.  It
        opens what it needs itself: :meth:`connect` is not required.

        Raises:
            BackendError: the broker cannot be reached or refused.
        """
        return []

    async def delete_durable_queue(self, name: str) -> None:
        """Delete the durable queue ``name`` that :meth:`durable_queues` listed.

        Raises:
            BackendError: ``name`` is not a queue Moksha created, a hub is
                consuming from it, or the broker refused.
        """
        raise BackendError(f"{self.name}: this backend keeps no durable queues to delete")

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
