"""The ZeroMQ backend: PUB/SUB sockets, no broker, AMQP topic rules filtered in-process.

Options (``moksha.config`` keys):

* ``zmq_enabled`` -- use this backend.
* ``zmq_publish_endpoints`` -- endpoints the publishing socket (XPUB) *binds*, e.g.
  ``tcp://*:6543``; ``tcp://127.0.0.1:*`` picks a free port
  (see :attr:`ZeroMQBackend.publish_endpoints`).
* ``zmq_subscribe_endpoints`` -- endpoints the SUB socket *connects* to, or binds
  when ``zmq_subscribe_method = bind`` (publishers then connect to it).
* ``zmq_strict`` -- False (default, as in the original Moksha): loose matching,
  where a pattern without wildcards also matches every topic it is a *string*
  prefix of (``org.x`` matches ``org.x``, ``org.x.y`` and ``org.xyz``).  True:
  patterns follow the AMQP rules exactly, as on every other backend.  Wildcard
  patterns keep the AMQP rules in both modes.
* ``zmq_metadata_frame`` -- False (default): send the original's two frames
  ``[topic, json]``, which the original hubs' subscribers (txZMQ) require; ids,
  timestamps and headers are then not carried (a receiver gives each message a
  new id).  True: add the third, metadata frame.  A hub that bridges ZeroMQ
  with other backends needs it: the ``moksha-origin`` header is how a hub
  recognises its own messages coming back, and the id is kept across backends.
* ``zmq_hwm`` -- high-water mark (SNDHWM and RCVHWM) of each socket, in messages.
* ``zmq_reconnect_ivl`` / ``zmq_reconnect_ivl_max`` -- ZeroMQ's own TCP reconnection.
* ``zmq_tcp_keepalive`` (+ ``_idle``, ``_intvl``, ``_cnt``) -- TCP keepalive probes.

Wire format: ``[topic, JSON body]`` out (the original Moksha's), plus the meta
frame with ``zmq_metadata_frame``; either form in.  Described in
:mod:`moksha.hub.backends.zeromq_wire`.
Malformed multiparts are logged at WARNING -- the first, then one line per 1000
with the running count in :attr:`ZeroMQBackend.malformed` -- and dropped.

Delivery: the SUB socket subscribes to the literal start of each pattern
(``zeromq_wire.subscription_prefix``; reference-counted, unsubscribed when no
pattern needs it any more) and a :class:`~moksha.topics.TopicRouter` decides
which handlers get each message.
One reader task waits until the socket is readable, then drains every ready
message without waiting (awaiting each message separately is ~4x slower).
There are no acknowledgements and no durable queues: every subscription gets
every matching message once, ``group`` is ignored.

Queues and loss: each socket's queue is bounded by ``zmq_hwm``.  When a
subscriber is slower than the publisher, its queue fills and the publisher
*drops* further messages for that subscriber -- ZeroMQ's documented PUB
behaviour; :meth:`~ZeroMQBackend.publish` never blocks.  libzmq does not tell
the publisher which messages it dropped, so drops cannot be counted here.

Readiness: ZeroMQ subscriptions travel to publishers asynchronously (the "slow
joiner"), so a message published right after subscribing can be lost.  Where
the SUB socket is connected to this backend's own publish endpoints, the XPUB
socket sees each subscription arrive, and :meth:`~ZeroMQBackend.subscribe` (and
:meth:`~ZeroMQBackend.connect`) wait for that, for at most 2 seconds.  For
remote publishers this cannot be known; publish to them only once they are
known to be listening.  Reconnection is ZeroMQ's own and silent.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import zmq
import zmq.asyncio

from moksha.errors import BackendError, BackendUnavailable, ConfigError
from moksha.hub.backends.base import (
    Backend,
    Capabilities,
    FanOutSubscription,
    Handler,
    Subscription,
    deliver,
)
from moksha.hub.backends.zeromq_wire import (
    MalformedMessage,
    decode_frames,
    encode_frames,
    loose_match,
    reaches,
    subscription_prefix,
)
from moksha.message import Message
from moksha.topics import TopicRouter, literal_prefix

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["ZeroMQBackend"]

log = logging.getLogger(__name__)

# How long subscribe()/connect() wait for the own XPUB to see a subscription.
READY_TIMEOUT = 2.0
# Messages drained per wake-up before the reader lets other tasks run.
_BATCH = 1000
_WARN_EVERY = 1000
# Topics whose handlers are remembered; past this many the memory is emptied and refilled.
_MATCHED_CACHE_SIZE = 10_000

# Socket options taken from the config, as (option, config key); keepalive ones only when enabled.
_OPTIONS = (
    (zmq.LINGER, None),
    (zmq.SNDHWM, "zmq_hwm"),
    (zmq.RCVHWM, "zmq_hwm"),
    (zmq.RECONNECT_IVL, "zmq_reconnect_ivl"),
    (zmq.RECONNECT_IVL_MAX, "zmq_reconnect_ivl_max"),
)
_KEEPALIVE_OPTIONS = (
    (zmq.TCP_KEEPALIVE_IDLE, "zmq_tcp_keepalive_idle"),
    (zmq.TCP_KEEPALIVE_INTVL, "zmq_tcp_keepalive_intvl"),
    (zmq.TCP_KEEPALIVE_CNT, "zmq_tcp_keepalive_cnt"),
)


# What _deliver leaves to await: message, the unfinished handler, its awaitable, the others.
_Unfinished = tuple[Message, Handler, Awaitable[None], tuple[Handler, ...]]


class ZeroMQBackend(Backend):
    """Publish on bound XPUB endpoints, receive through one SUB socket (module docstring).

    Attributes:
        malformed: how many received multipart messages were dropped as malformed.
    """

    name = "zeromq"
    capabilities = Capabilities(
        acknowledgements=False, native_wildcards=False, durable=False, cross_process=True
    )

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._metadata = config.zmq_metadata_frame
        if not self._metadata:
            self.capabilities = replace(self.capabilities, headers=False)
        self._router: TopicRouter[Handler] = TopicRouter()
        self._loose: list[tuple[str, Handler]] = []  # wildcard-free patterns, strict off
        self._matched: dict[str, tuple[Handler, ...]] = {}  # topic -> handlers, both kinds
        self._prefixes: Counter[bytes] = Counter()  # SUB subscriptions, by patterns needing them
        self._awaited: dict[bytes, tuple[asyncio.Event, list[int]]] = {}
        self._context: zmq.asyncio.Context | None = None
        self._pub: zmq.asyncio.Socket | None = None
        self._sub: zmq.asyncio.Socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._bound: tuple[str, ...] = ()
        self._own_links = 0  # subscribe endpoints that reach our own publish endpoints
        self.malformed = 0

    @classmethod
    def configured(cls, config: Config) -> bool:
        """Whether ``zmq_enabled`` is true."""
        return config.zmq_enabled

    @property
    def connected(self) -> bool:
        """Whether the sockets are set up (ZeroMQ reconnects TCP links by itself)."""
        return self._pub is not None

    @property
    def publish_endpoints(self) -> tuple[str, ...]:
        """The endpoints actually bound, with ports resolved (``tcp://127.0.0.1:*``)."""
        return self._bound

    async def connect(self) -> None:
        """Bind and connect the sockets, start the reader.

        Raises:
            ConfigError: no endpoints are configured, or one is not valid.
            BackendError: an endpoint cannot be bound (e.g. its address is in use).
        """
        if self._context is not None:
            return
        config = self.config
        if not config.zmq_publish_endpoints and not config.zmq_subscribe_endpoints:
            raise ConfigError(
                "zmq_enabled is true but no ZeroMQ endpoints are set; set zmq_publish_endpoints "
                "(e.g. tcp://127.0.0.1:6543) and/or zmq_subscribe_endpoints.",
                key="zmq_publish_endpoints",
                source=config.source("zmq_publish_endpoints"),
            )
        context = zmq.asyncio.Context()
        try:
            pub = self._socket(context, zmq.XPUB)
            pub.setsockopt(zmq.XPUB_VERBOSE, 1)  # report every subscription, not only new ones
            for endpoint in config.zmq_publish_endpoints:
                self._attach(pub.bind, endpoint, "zmq_publish_endpoints")
                self._bound += (pub.getsockopt_string(zmq.LAST_ENDPOINT),)
            sub = self._socket(context, zmq.SUB)
            binds = config.zmq_subscribe_method == "bind"
            for endpoint in config.zmq_subscribe_endpoints:
                self._attach(
                    sub.bind if binds else sub.connect, endpoint, "zmq_subscribe_endpoints"
                )
        except BaseException:
            self._bound = ()
            context.destroy(linger=0)
            raise
        self._context, self._pub, self._sub = context, pub, sub
        self._own_links = (
            0
            if binds
            else sum(
                any(reaches(b, e) for b in self._bound) for e in config.zmq_subscribe_endpoints
            )
        )
        self._tasks = [
            asyncio.create_task(self._read(sub), name="zeromq reader"),
            asyncio.create_task(self._watch_subscriptions(pub), name="zeromq xpub watcher"),
        ]
        if self._bound:
            log.info("zeromq: publishing on %s", ", ".join(self._bound))
        else:
            log.info("zeromq: no zmq_publish_endpoints, so what this hub publishes reaches nobody")
        # Subscriptions made before connect; else a probe, so the SUB link is up on return.
        prefixes = list(self._prefixes)
        probe = b"\0moksha.probe." + os.urandom(6).hex().encode()
        if not prefixes and self._own_links:
            prefixes = [probe]
        await self._until_ready([self._sub_prefix(sub, prefix) for prefix in prefixes])
        if probe in prefixes:
            sub.unsubscribe(probe)

    async def close(self) -> None:
        """Stop the reader and close the sockets (LINGER 0: unsent messages are dropped).

        Subscriptions stay registered and are applied again by a later :meth:`connect`.
        """
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("zeromq: a background task had failed: %r", result)
        self._give_up_waiting()
        context, self._context = self._context, None
        for sock in (self._pub, self._sub):
            if sock is not None:
                sock.close(linger=0)
        self._pub = self._sub = None
        self._bound = ()
        if context is not None:
            context.term()

    async def publish(self, message: Message) -> None:
        """Send ``message`` to every connected subscriber; never blocks.

        A subscriber whose queue holds ``zmq_hwm`` messages misses this one
        (ZeroMQ drops it, silently).

        Raises:
            BackendUnavailable: the backend is not connected.
            BackendError: ZeroMQ refused the message.
            MessageError: the body cannot be encoded.
        """
        pub = self._pub
        if pub is None:
            raise BackendUnavailable(
                f"cannot publish {message.topic} on ZeroMQ: the backend is not connected "
                "(use it as 'async with', or call connect() first)."
            )
        try:
            # The asyncio socket's send, not a raw one: it keeps the XPUB watcher's
            # edge-triggered readability signal intact.
            await pub.send_multipart(encode_frames(message, metadata=self._metadata))
        except zmq.ZMQError as exc:
            raise BackendError(f"ZeroMQ could not send {message.topic}: {exc}") from exc

    async def subscribe(
        self,
        patterns: Sequence[str],
        handler: Handler,
        *,
        group: str | None = None,
        concurrency: int = 1,
    ) -> Subscription:
        """Deliver messages matching ``patterns`` to ``handler``; ``group`` is ignored.

        Returns once our own publisher saw the subscription (see the module
        docstring), at most :data:`READY_TIMEOUT` seconds later.
        """
        waits: list[asyncio.Event | None] = []
        self._matched.clear()
        for pattern in patterns:
            if not self.config.zmq_strict and literal_prefix(pattern) == pattern:
                self._loose.append((pattern, handler))
            else:
                self._router.add(pattern, handler)
            prefix = subscription_prefix(pattern)
            self._prefixes[prefix] += 1
            if self._sub is None:
                continue  # applied by connect()
            if self._prefixes[prefix] == 1:
                waits.append(self._sub_prefix(self._sub, prefix))
            else:  # maybe still on its way, for an earlier subscribe()
                waits.append(self._awaited[prefix][0] if prefix in self._awaited else None)
        await self._until_ready(waits)
        return FanOutSubscription(patterns, handler, self._drop)

    # -- internals ---------------------------------------------------------

    async def _drop(self, patterns: Sequence[str], handler: Handler) -> None:
        for pattern in patterns:
            self._remove(pattern, handler)

    def _remove(self, pattern: str, handler: Handler) -> None:
        self._matched.clear()
        if (pattern, handler) in self._loose:
            self._loose.remove((pattern, handler))
        elif not self._router.remove(pattern, handler):
            return
        prefix = subscription_prefix(pattern)
        self._prefixes[prefix] -= 1
        if self._prefixes[prefix] <= 0:
            del self._prefixes[prefix]
            if self._sub is not None:
                self._sub.unsubscribe(prefix)

    def _socket(self, context: zmq.asyncio.Context, kind: int) -> zmq.asyncio.Socket:
        config: Any = self.config
        sock = context.socket(kind)
        for option, key in _OPTIONS:
            sock.setsockopt(option, getattr(config, key) if key else 0)
        if config.zmq_tcp_keepalive:
            sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
            for option, key in _KEEPALIVE_OPTIONS:
                sock.setsockopt(option, getattr(config, key))
        return sock

    def _attach(self, how: Callable[[str], Any], endpoint: str, key: str) -> None:
        verb = how.__name__
        try:
            how(endpoint)
        except zmq.ZMQError as exc:
            source = self.config.source(key)
            if exc.errno == errno.EADDRINUSE:
                raise BackendError(
                    f"ZeroMQ cannot bind {endpoint} ({key}, from {source}): the address is "
                    "already in use. Stop the program listening there or choose another port."
                ) from exc
            raise ConfigError(
                f"ZeroMQ cannot {verb} {endpoint!r}: {exc.strerror}. Write endpoints as "
                "tcp://host:port (tcp://*:port to bind every interface), ipc:///path or "
                "inproc://name.",
                key=key,
                source=source,
            ) from exc

    def _sub_prefix(self, sub: zmq.asyncio.Socket, prefix: bytes) -> asyncio.Event | None:
        """Subscribe the SUB socket; return what is set once our own XPUB saw it."""
        event = None
        if self._own_links:
            event, _ = self._awaited.setdefault(prefix, (asyncio.Event(), [self._own_links]))
        sub.subscribe(prefix)
        return event

    async def _until_ready(self, waits: Sequence[asyncio.Event | None]) -> None:
        events = [event for event in waits if event is not None]
        if not events:
            return
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                for event in events:
                    await event.wait()
        except TimeoutError:
            log.debug("zeromq: own publisher did not see the subscription in %ss", READY_TIMEOUT)
            self._give_up_waiting()

    def _give_up_waiting(self) -> None:
        for event, _ in self._awaited.values():
            event.set()
        self._awaited.clear()

    async def _watch_subscriptions(self, pub: zmq.asyncio.Socket) -> None:
        """Read what subscribers tell the XPUB socket: ``\\x01prefix`` subscribes."""
        while True:
            frame = await pub.recv()
            awaited = self._awaited.get(frame[1:]) if frame[:1] == b"\x01" else None
            if awaited is not None:
                event, links = awaited
                links[0] -= 1
                if links[0] <= 0:
                    event.set()
                    del self._awaited[frame[1:]]

    async def _read(self, sub: zmq.asyncio.Socket) -> None:
        """Wait until readable, then drain every ready message; deliver each."""
        drain = zmq.Socket.shadow(sub.underlying).recv_multipart  # a future per message is slow
        frames: list[bytes] | None = None
        while True:
            if frames is None:
                frames = await sub.recv_multipart()
            for _ in range(_BATCH):
                # Handlers that queue the message at once leave nothing to await:
                # no coroutine per message on that path.
                unfinished = self._deliver(frames)
                if unfinished is not None:
                    await self._finish(*unfinished)
                try:
                    frames = drain(zmq.NOBLOCK)
                except zmq.Again:
                    frames = None
                    break
            # Under a steady stream there is always more: let other tasks run first.
            await asyncio.sleep(0)

    def _handlers(self, topic: str) -> tuple[Handler, ...]:
        # Remembered per topic: loose patterns are tried one by one, which costs per
        # message what the router's own cache spares it (a stream repeats few topics).
        handlers = self._matched.get(topic)
        if handlers is None:
            handlers = self._router.match(topic)
            if self._loose:
                handlers += tuple(h for p, h in self._loose if loose_match(p, topic))
                # Once each, however many of a subscriber's patterns match (as the router does).
                handlers = tuple({id(h): h for h in handlers}.values())
            if len(self._matched) >= _MATCHED_CACHE_SIZE:
                self._matched.clear()
            self._matched[topic] = handlers
        return handlers

    def _deliver(self, frames: list[bytes]) -> _Unfinished | None:
        """Decode ``frames`` and hand the message to its handlers, in order.

        Returns:
            None when every handler finished at once; else what :meth:`_finish`
            must await: the message, the awaitable of the handler that did not
            finish, and the handlers after it.
        """
        try:
            if not 2 <= len(frames) <= 3:
                raise MalformedMessage(f"it has {len(frames)} frame(s), expected 2 or 3")
            topic = frames[0].decode()
            # Handlers first: what the prefix filter let through may match no pattern.
            handlers = self._handlers(topic)
            if not handlers:
                return None
            if len(frames) == 2:  # the original's wire: nothing more to decode now
                message = Message(topic, payload=frames[1])
            else:
                message = decode_frames(frames, topic)
        except (MalformedMessage, UnicodeDecodeError) as exc:
            reason = str(exc) if isinstance(exc, MalformedMessage) else "its topic is not UTF-8"
            self.malformed += 1
            if self.malformed == 1 or self.malformed % _WARN_EVERY == 0:
                log.warning(
                    "zeromq: dropped a message that is not [topic, body(, meta)]: %s "
                    "(first frame %r; %d dropped so far)",
                    reason,
                    frames[0][:60],
                    self.malformed,
                )
            return None
        for i, handler in enumerate(handlers):
            try:
                waiting = handler(message)
            except Exception:
                log.exception("zeromq: subscriber %r failed on %s", handler, message.topic)
                continue
            if waiting is not None:
                return message, handler, waiting, handlers[i + 1 :]
        return None

    async def _finish(
        self,
        message: Message,
        handler: Handler,
        waiting: Awaitable[None],
        rest: tuple[Handler, ...],
    ) -> None:
        """Await the handler that did not finish at once, then deliver to the ``rest``."""
        try:
            await waiting
        except Exception:
            log.exception("zeromq: subscriber %r failed on %s", handler, message.topic)
        for handler in rest:
            try:
                await deliver(handler, message)
            except Exception:
                log.exception("zeromq: subscriber %r failed on %s", handler, message.topic)
