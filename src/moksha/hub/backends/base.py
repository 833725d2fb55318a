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
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, Self

from moksha.message import Message

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["Backend", "Capabilities", "Handler", "Subscription", "deliver"]

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
        headers: a message's id, timestamp and headers reach its subscribers
            (bridges between backends rely on them to recognise their own
            messages coming back).
    """

    acknowledgements: bool = False
    native_wildcards: bool = False
    durable: bool = False
    cross_process: bool = False
    headers: bool = True


class Subscription(abc.ABC):
    """A handler subscribed to patterns on one backend; cancel it to stop deliveries."""

    patterns: tuple[str, ...]

    @abc.abstractmethod
    async def cancel(self) -> None:
        """Stop deliveries to the handler.  Cancelling twice is harmless."""


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

    @abc.abstractmethod
    async def subscribe(
        self, patterns: Sequence[str], handler: Handler, *, group: str | None = None
    ) -> Subscription:
        """Deliver every message whose topic matches one of ``patterns`` to ``handler``.

        Args:
            patterns: topic patterns (``*`` one word, ``#`` zero or more).
            handler: awaited once per message.
            group: a consumer-group name (letters, digits, ``.``, ``_``, ``-``,
                ``:``); subscriptions sharing a group on a backend with durable
                queues share the work (each message is handled once per
                group).  Ignored where it means nothing.
        """

    @property
    def connected(self) -> bool:
        """Whether the backend currently has a working connection."""
        return True

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
