"""The central hub: a client of the bus that also runs consumers and producers.

:class:`CentralMokshaHub` is what ``moksha hub`` starts.  Besides the client's
work it starts, in order, the bridges between backends
(:mod:`moksha.hub.bridges`), the consumers (each behind a
:class:`~moksha.hub.runners.ConsumerRunner`, its failures ending as dead
letters: :mod:`moksha.hub.dead_letters`), the producers and its attachments
(:mod:`moksha.hub.attachment`: the live socket, the cluster, the archive, when
configured); and it shuts down cleanly: the live socket's clients first, then
producers, then consumers drain their backlog for at most
``moksha.shutdown_timeout`` seconds, then the backends close.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from moksha.config import Config
from moksha.errors import MokshaError, PluginError
from moksha.hub.api.consumer import Consumer
from moksha.hub.api.producer import PollingProducer, Producer
from moksha.hub.attachment import (
    Attachment,
    AttachmentFactory,
    Coordinator,
    installed_factories,
    missing,
)
from moksha.hub.backends import Backend, Handler, Subscription
from moksha.hub.bridges import start_bridges
from moksha.hub.client import MokshaHub
from moksha.hub.core import HubState
from moksha.hub.dead_letters import DEAD_LETTER_HEADER, dead_letter
from moksha.hub.polling import run_polling_producer
from moksha.hub.queue_depth import watch_queue_depths
from moksha.hub.runners import ConsumerRunner
from moksha.hub.validation import (
    Origin,
    checked_plugins,
    consumer_class_problem,
    consumer_problem,
    producer_class_problem,
    producer_problem,
    rejection,
)
from moksha.message import Message
from moksha.plugins import CONSUMER_GROUPS, PRODUCER_GROUPS

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

# DEAD_LETTER_HEADER lives in moksha.hub.dead_letters; still importable from here.
__all__ = ["DEAD_LETTER_HEADER", "CentralMokshaHub", "group_name"]

log = logging.getLogger("moksha.hub")


def group_name(cls: type) -> str:
    """The consumer group of a consumer class: its dotted path, in characters brokers accept.

    Hubs running the same class share the work of its group.
    """
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", f"{cls.__module__}.{cls.__qualname__}")


class CentralMokshaHub(MokshaHub):
    """A hub that also runs consumers and producers (what ``moksha hub`` starts).

    Args:
        config: as for :class:`MokshaHub`.
        consumers: consumer classes to run; None loads the ``moksha.consumer``
            entry points.
        producers: producer classes to run; None loads the ``moksha.producer``
            and ``moksha.stream`` entry points.
        backends: as for :class:`MokshaHub`.
        schemas: as for :class:`MokshaHub`; plugins add those they declare in
            ``messages = [...]``.
        attachments: factories of what runs with the hub (see
            :mod:`moksha.hub.attachment`), by name; None loads the
            ``moksha.hub.attachment`` entry points (the live socket, the cluster,
            the archive).

    Raises:
        PluginError: a class in ``consumers`` or ``producers`` cannot run (wrong
            base class, no topic, no frequency...; see :mod:`moksha.hub.validation`).
            Plugins found on entry points are skipped with one ERROR instead.
        ConfigError, BackendError: as for :class:`MokshaHub`; at start, also when
            the configuration asks for an attachment nothing provides.

    Attributes:
        consumers: the running consumer instances.
        producers: the running producer instances.
        attachments: what runs with the hub, by name, once started.
        coordinator: what decides which node runs a polling producer (the
            cluster), once started; None: every producer runs here.
        livesocket_routes: more routes for the live socket's port (e.g.
            monitoring), added before start.
    """

    def __init__(
        self,
        config: Config | Mapping[str, Any] | None = None,
        consumers: Sequence[type[Consumer]] | None = None,
        producers: Sequence[type[Producer]] | None = None,
        *,
        backends: Sequence[Backend] | None = None,
        schemas: Sequence[type[Any]] = (),
        attachments: Mapping[str, AttachmentFactory] | None = None,
    ) -> None:
        # Classes passed in code are checked before anything connects.
        for consumer_cls in consumers or ():
            if (problem := consumer_class_problem(consumer_cls)) is not None:
                raise PluginError(rejection(Origin(), "consumer", consumer_cls, problem))
        for producer_cls in producers or ():
            if (problem := producer_class_problem(producer_cls)) is not None:
                raise PluginError(rejection(Origin(), "producer", producer_cls, problem))
        self._consumer_classes = consumers
        self._producer_classes = producers
        self.consumers: list[Consumer] = []
        self.producers: list[Producer] = []
        self._runners: list[tuple[ConsumerRunner, list[Subscription]]] = []
        self._bridges: list[Subscription] = []
        self._depth_watch: asyncio.Task[None] | None = None
        self._attachment_factories = attachments
        self.attachments: dict[str, Attachment] = {}
        self._detached: set[str] = set()
        self.coordinator: Coordinator | None = None
        self.livesocket_routes: list[BaseRoute] = []
        super().__init__(config, backends=backends, schemas=schemas)

    @property
    def livesocket(self) -> Any:
        """The :class:`moksha.livesocket.LiveSocket` serving browsers, when on and started."""
        return getattr(self.attachments.get("livesocket"), "live", None)

    @property
    def livesocket_url(self) -> str | None:
        """Where the live socket listens (``http://host:port``), when on and started."""
        url: str | None = getattr(self.attachments.get("livesocket"), "url", None)
        return url

    @property
    def cluster(self) -> Any:
        """This node's :class:`moksha.cluster.ClusterNode` (``moksha.cluster.url``), or None."""
        return getattr(self.attachments.get("cluster"), "node", None)

    async def serve(self, on_started: Callable[[], None] | None = None) -> None:
        """Start, run until SIGINT or SIGTERM (or :meth:`aclose`), then shut down cleanly.

        Args:
            on_started: called once the plugins are running (e.g. to print a banner).
        """
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, self._request_stop, sig)
        try:
            if self.state is HubState.NEW:
                await self.start()
            if on_started is not None:
                on_started()
            assert self._main is not None
            await asyncio.shield(self._main)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            await self.aclose()

    def _request_stop(self, sig: signal.Signals) -> None:
        log.info("received %s, shutting down", sig.name)
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def _on_start(self) -> None:
        factories = self._attachment_factories
        if factories is None:
            factories = installed_factories()
        if (problem := missing(self.config, factories)) is not None:
            raise problem
        attached = [a for f in factories.values() if (a := f(self.config)) is not None]
        await self._attach([a for a in attached if not a.serves])
        try:
            if self._bridging:
                self._bridges = await start_bridges(self.backends, self.hub_id)
            try:
                await self._start_consumers()
                await self._start_producers()
            except PluginError:
                # A class passed in code cannot run: the consumers started before it stop too.
                await asyncio.gather(*(runner.stop(0) for runner, _ in self._runners))
                raise
            await self._attach([a for a in attached if a.serves])
        except BaseException:
            await self._detach(serving=True)
            await self._detach(serving=False)
            raise

    async def _attach(self, attachments: list[Attachment]) -> None:
        for attachment in attachments:
            await attachment.start(self)
            self.attachments[attachment.name] = attachment
            coordinator = getattr(attachment, "coordinator", None)
            if coordinator is not None:
                self.coordinator = coordinator

    async def _detach(self, *, serving: bool) -> None:
        """Close the serving attachments (or the others), last started first.

        They stay in :attr:`attachments`, closed: their numbers can still be read.
        """
        for name, attachment in reversed(list(self.attachments.items())):
            if attachment.serves is serving and name not in self._detached:
                self._detached.add(name)
                await attachment.aclose()

    def _declared_schemas(self, origin: Origin, kind: str, cls: type[Any]) -> bool:
        """Add the schema classes a plugin declares (``messages``); False when one is not."""
        try:
            self.schemas.add_classes(getattr(cls, "messages", None) or ())
        except TypeError as exc:
            self._reject(origin, kind, cls, f"its messages list holds a non-schema: {exc}")
            return False
        return True

    async def _refused(self, message: Message, error: BaseException, *, consumer: str) -> None:
        """A received message failed its schema: to the dead letters, never to ``consume``."""
        await self._dead_letter(message, error, 1, consumer)

    async def _dead_letter(
        self, message: Message, error: BaseException, attempts: int, consumer: str
    ) -> None:
        """Publish a message that failed for good on its dead-letter topic."""
        letter = dead_letter(message, error, attempts, consumer, self.config.dead_letter_topic)
        if letter is None:
            return
        await self._send(letter)
        fields = {"topic": message.topic, "consumer": consumer, "message_id": message.id}
        log.warning("%s: message %s sent to %s", consumer, message.id, letter.topic, extra=fields)

    @staticmethod
    def _plugin_classes(
        explicit: Sequence[type[Any]] | None, groups: Sequence[str]
    ) -> list[tuple[Any, Origin]]:
        """The classes to run with where each came from (the entry points when not given).

        Entry points failing the class checks are logged and left out; classes
        given in code were checked by ``__init__``.
        """
        if explicit is not None:
            return [(cls, Origin()) for cls in explicit]
        return checked_plugins(groups)

    @staticmethod
    def _reject(origin: Origin, kind: str, obj: Any, problem: str) -> None:
        """Skip a plugin from an entry point with one ERROR; refuse one passed in code."""
        sentence = rejection(origin, kind, obj, problem)
        if origin.group is None:
            raise PluginError(sentence)
        log.error("%s", sentence)

    async def _construct(self, origin: Origin, kind: str, cls: type[Any]) -> Any:
        """``cls(self)``, or None (logged with its traceback) when its ``__init__`` raised."""
        try:
            # Plugin constructors may block (databases, files): not on the loop.
            return await asyncio.to_thread(cls, self)
        except Exception as exc:
            problem = (
                f"its __init__ raised {type(exc).__name__}: {exc}; fix what it needs "
                "(the traceback follows), the other plugins run without it"
            )
            log.error("%s", rejection(origin, kind, cls, problem), exc_info=True)
            return None

    async def _start_consumers(self) -> None:
        assert self._loop is not None and self._tasks is not None
        classes = self._plugin_classes(self._consumer_classes, CONSUMER_GROUPS)
        for attachment in self.attachments.values():
            # Consumers an attachment brings (the archive's recorder): checked as code's are.
            classes += [(cls, Origin()) for cls in getattr(attachment, "consumers", ())]
        for cls, origin in classes:
            if not self._declared_schemas(origin, "consumer", cls):
                continue
            consumer = await self._construct(origin, "consumer", cls)
            if consumer is None:
                continue
            problem = consumer_problem(consumer)
            if problem is not None:
                self._reject(origin, "consumer", cls, problem)
                continue
            patterns = consumer.topics
            backend = self._receiving
            wait_for_consume = backend.capabilities.acknowledgements and self.config.blocking_mode
            runner = ConsumerRunner(
                consumer,
                config=self.config,
                loop=self._loop,
                dead_letter=self._dead_letter,
                outgoing=self._outgoing,
                # Retries go back on the broker, attempt count and all, when it acks.
                requeue=partial(backend.requeue, group=group_name(cls))
                if wait_for_consume
                else None,
            )
            handler: Handler = runner.process if wait_for_consume else runner.deliver
            if any(b.capabilities.cross_process for b in self.backends):
                # What other processes send is checked before consume, and counted
                # for the topic catalog; what this hub publishes was checked then.
                handler = self.schemas.guard(
                    handler, partial(self._refused, consumer=cls.__name__), self.catalog.receive
                )
            try:
                # Blocking on an acknowledging broker: one delivery in flight per
                # worker, each acked when its own consume returned.
                # (Only asked for when it matters: older backends may not take it.)
                workers = runner.workers if wait_for_consume else 1
                extra = {"concurrency": workers} if workers > 1 else {}
                subscription = await backend.subscribe(
                    patterns, handler, group=group_name(cls), **extra
                )
            except MokshaError:
                log.exception("consumer %s cannot subscribe to %s", cls.__qualname__, patterns)
                continue
            runner.start(self._tasks)
            for pattern in patterns:
                self.topics.setdefault(pattern, []).append(consumer.consume)
            self.consumers.append(consumer)
            self._runners.append((runner, [subscription]))
            log.info("consumer %s started on %s", cls.__qualname__, ", ".join(patterns))
        if self.config.queue_depth_interval > 0:
            runners = self._runners
            self._depth_watch = self._tasks.create_task(
                watch_queue_depths(
                    lambda: [(r.consumer, subs) for r, subs in runners],
                    self.config.queue_depth_interval,
                ),
                name="moksha queue depths",
            )

    async def _start_producers(self) -> None:
        assert self._loop is not None and self._tasks is not None
        for cls, origin in self._plugin_classes(self._producer_classes, PRODUCER_GROUPS):
            if not cls.enabled(self.config):
                log.info("producer %s is off in this configuration", cls.__qualname__)
                continue
            if not self._declared_schemas(origin, "producer", cls):
                continue
            producer = await self._construct(origin, "producer", cls)
            if producer is None:
                continue
            problem = producer_problem(producer)
            if problem is not None:
                self._reject(origin, "producer", cls, problem)
                continue
            if isinstance(producer, PollingProducer):
                task = self._tasks.create_task(
                    self._logged(self._run_producer(producer)),
                    name=f"moksha producer {cls.__qualname__}",
                )
                producer._on_stop = partial(self._loop.call_soon_threadsafe, task.cancel)
            self.producers.append(producer)
            log.info("producer %s started", cls.__qualname__)
        self.catalog.declare(
            [type(consumer) for consumer in self.consumers],
            [type(producer) for producer in self.producers],
        )

    async def _run_producer(self, producer: PollingProducer) -> None:
        """Poll; in a cluster, only while this node leads the producer (unless it opts out)."""
        cluster = self.coordinator
        if cluster is None or not producer.cluster_singleton:
            await run_polling_producer(producer)
            return
        name = f"producer:{group_name(type(producer))}"

        async def poll_while_leading() -> None:
            producer._leader = True
            try:
                await run_polling_producer(producer)
            finally:
                producer._leader = False

        producer._leader = False
        await cluster.lead(name, poll_while_leading)

    async def _on_stop(self) -> None:
        if self._depth_watch is not None:
            self._depth_watch.cancel()
        # The live socket first: its clients move to other nodes while this one stops
        # (within its own moksha.shutdown_timeout: the consumers' begins after it).
        await self._detach(serving=True)
        timeout = self.config.shutdown_timeout
        began = asyncio.get_running_loop().time()
        deadline = began + timeout
        for producer in self.producers:
            await self._call_stop_hook(producer)
        await self._settle_until(deadline)
        for _, subscriptions in self._runners:
            for subscription in subscriptions:
                await subscription.cancel()
        for subscription in self._bridges:
            await subscription.cancel()
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        left = await asyncio.gather(*(runner.stop(remaining) for runner, _ in self._runners))
        waited = asyncio.get_running_loop().time() - began
        for (runner, _), count in zip(self._runners, left, strict=True):
            if count:
                log.warning(
                    "%s: %d messages left unprocessed after waiting %.1fs "
                    "(moksha.shutdown_timeout = %s)",
                    runner.name,
                    count,
                    waited,
                    timeout,
                )
        for consumer in self.consumers:
            await self._call_stop_hook(consumer)
        await self._detach(serving=False)
        self.coordinator = None
        await super()._on_stop()

    async def _settle_until(self, deadline: float) -> None:
        """Wait (at most until ``deadline``) until consumers have nothing left to do.

        Subscriptions stay open meanwhile, so what consumers publish to each
        other while finishing their backlog still arrives.
        """
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            outgoing = self._outgoing
            if (
                not self._background
                and not (outgoing is not None and len(outgoing))
                and all(runner.idle for runner, _ in self._runners)
            ):
                return
            await asyncio.sleep(0.01)

    @staticmethod
    async def _call_stop_hook(plugin: Consumer | Producer) -> None:
        try:
            await asyncio.to_thread(plugin.stop)
        except Exception:
            log.exception("%s.stop failed", type(plugin).__name__)
