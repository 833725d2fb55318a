"""The central hub: a client of the bus that also runs consumers and producers.

:class:`CentralMokshaHub` is what ``moksha hub`` starts.  Besides the client's
work it starts, in order, the bridges between backends, the consumers, the
producers and (when configured) the live socket; and it shuts down cleanly:
producers first, then consumers drain their backlog for at most
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
from moksha.errors import ConfigError, MokshaError
from moksha.hub.api.consumer import Consumer
from moksha.hub.api.producer import PollingProducer, Producer
from moksha.hub.backends import Backend, Subscription
from moksha.hub.client import ORIGIN_HEADER, HubState, MokshaHub
from moksha.hub.handling import ATTEMPT_HEADER
from moksha.hub.runners import ConsumerRunner, run_polling_producer
from moksha.message import Message
from moksha.plugins import CONSUMER_GROUPS, PRODUCER_GROUPS, load_plugin_classes
from moksha.topics import topics_of

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from moksha.livesocket import LiveSocket, LiveSocketServer

__all__ = ["DEAD_LETTER_HEADER", "CentralMokshaHub", "group_name"]

log = logging.getLogger("moksha.hub")

DEAD_LETTER_HEADER = "moksha-dead-letter"
"""Set on a dead letter: the topic it failed on."""


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

    Attributes:
        consumers: the running consumer instances.
        producers: the running producer instances.
        livesocket: the live socket serving browsers, when enabled.
        livesocket_url: where it listens (``http://host:port``), when enabled.
    """

    def __init__(
        self,
        config: Config | Mapping[str, Any] | None = None,
        consumers: Sequence[type[Consumer]] | None = None,
        producers: Sequence[type[Producer]] | None = None,
        *,
        backends: Sequence[Backend] | None = None,
    ) -> None:
        self._consumer_classes = consumers
        self._producer_classes = producers
        self.consumers: list[Consumer] = []
        self.producers: list[Producer] = []
        self._runners: list[tuple[ConsumerRunner, list[Subscription]]] = []
        self._bridges: list[Subscription] = []
        self.livesocket: LiveSocket | None = None
        self.livesocket_url: str | None = None
        self._livesocket_server: LiveSocketServer | None = None
        # More routes for the live socket's port (e.g. monitoring), added before start.
        self.livesocket_routes: list[BaseRoute] = []
        super().__init__(config, backends=backends)

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
        await self._start_bridges()
        await self._start_consumers()
        await self._start_producers()
        await self._start_livesocket()

    async def _start_livesocket(self) -> None:
        """Serve browsers and other processes when ``moksha.livesocket.backend = websocket``."""
        backend = self.config.livesocket_backend
        if backend is None:
            return
        if backend != "websocket":
            raise ConfigError(
                f"{backend!r} is not a live-socket backend Moksha has; use websocket",
                key="moksha.livesocket.backend",
                source=self.config.source("moksha.livesocket.backend"),
            )
        from moksha.livesocket import LiveSocket, LiveSocketServer, listen, livesocket_app

        assert self._tasks is not None
        sock = listen(
            self.config.livesocket_websocket_interface, self.config.livesocket_websocket_port
        )
        self.livesocket = LiveSocket(self, self.config)
        await self.livesocket.start()
        app = livesocket_app(self.livesocket)
        app.router.routes.extend(self.livesocket_routes)
        self._livesocket_server = LiveSocketServer(
            app, sock, self.livesocket.policy.max_frame_bytes
        )
        self._tasks.create_task(self._livesocket_server.serve(), name="moksha live socket")
        self.livesocket_url = self._livesocket_server.url
        log.info("live socket listening on %s", self.livesocket_url)

    async def _start_bridges(self) -> None:
        """Forward what others publish on one backend to every other backend.

        Messages published by a hub carry its id in the ``moksha-origin``
        header and went to all its backends already: they are not forwarded,
        so nothing echoes between brokers.
        """
        if not self._bridging:
            return
        for backend in self.backends:
            if not backend.capabilities.headers:
                log.warning(
                    "bridging %s as configured carries no message ids or headers, so a hub "
                    "cannot recognise its own messages coming back and forwards them again; "
                    "turn its metadata on (zeromq: zmq_metadata_frame = true)",
                    backend.name,
                )
        for source in self.backends:
            if not source.capabilities.cross_process:
                continue  # only this hub publishes there
            targets = [backend for backend in self.backends if backend is not source]
            subscription = await source.subscribe(["#"], partial(self._bridge, targets))
            self._bridges.append(subscription)
            log.info("bridging %s to %s", source.name, ", ".join(t.name for t in targets))

    async def _bridge(self, targets: list[Backend], message: Message) -> None:
        if ORIGIN_HEADER in message.headers:
            return
        forwarded = Message(
            message.topic,
            headers={**message.headers, ORIGIN_HEADER: self.hub_id},
            id=message.id,
            timestamp=message.timestamp_s,
            payload=message.payload,
            content_type=message.content_type,
        )
        for target in targets:
            await target.publish(forwarded)

    async def _dead_letter(
        self, message: Message, error: BaseException, attempts: int, consumer: str
    ) -> None:
        """Publish a message that failed for good on its dead-letter topic."""
        if DEAD_LETTER_HEADER in message.headers:
            log.error("%s: dead letter %s failed as well; dropped", consumer, message.id)
            return
        description = f"{type(error).__name__}: {error}".replace("\n", " ")[:500]
        headers = {
            **message.headers,
            DEAD_LETTER_HEADER: message.topic,
            "moksha-original-id": message.id,
            "moksha-error": description,
            "moksha-attempts": str(attempts),
            "moksha-consumer": consumer,
        }
        headers.pop(ATTEMPT_HEADER, None)
        topic = self.config.dead_letter_topic.format(topic=message.topic)
        await self._send(
            Message(
                topic, headers=headers, payload=message.payload, content_type=message.content_type
            )
        )
        log.warning("%s: message %s sent to %s", consumer, message.id, topic)

    async def _start_consumers(self) -> None:
        classes = self._consumer_classes
        if classes is None:
            classes = load_plugin_classes(CONSUMER_GROUPS)
        assert self._loop is not None and self._tasks is not None
        for cls in classes:
            try:
                # Plugin constructors may block (databases, files): not on the loop.
                consumer = await asyncio.to_thread(cls, self)
            except Exception:
                log.exception("consumer %s.%s failed to start", cls.__module__, cls.__qualname__)
                continue
            patterns = topics_of(consumer.topic)
            if not patterns:
                log.warning("consumer %s has no topic: it will receive nothing", cls.__qualname__)
            runner = ConsumerRunner(
                consumer, config=self.config, loop=self._loop, dead_letter=self._dead_letter
            )
            backend = self._receiving
            wait_for_consume = backend.capabilities.acknowledgements and self.config.blocking_mode
            handler = runner.process if wait_for_consume else runner.deliver
            subscriptions = []
            try:
                if patterns:
                    subscription = await backend.subscribe(patterns, handler, group=group_name(cls))
                    subscriptions.append(subscription)
            except MokshaError:
                log.exception("consumer %s cannot subscribe to %s", cls.__qualname__, patterns)
                continue
            runner.start(self._tasks)
            for pattern in patterns:
                self.topics.setdefault(pattern, []).append(consumer.consume)
            self.consumers.append(consumer)
            self._runners.append((runner, subscriptions))
            log.info("consumer %s started on %s", cls.__qualname__, ", ".join(patterns))

    async def _start_producers(self) -> None:
        classes = self._producer_classes
        if classes is None:
            classes = load_plugin_classes(PRODUCER_GROUPS)
        assert self._loop is not None and self._tasks is not None
        for cls in classes:
            if not cls.enabled(self.config):
                log.info("producer %s is off in this configuration", cls.__qualname__)
                continue
            try:
                producer = await asyncio.to_thread(cls, self)
            except Exception:
                log.exception("producer %s.%s failed to start", cls.__module__, cls.__qualname__)
                continue
            if isinstance(producer, PollingProducer):
                task = self._tasks.create_task(
                    self._logged(run_polling_producer(producer)),
                    name=f"moksha producer {cls.__qualname__}",
                )
                producer._on_stop = partial(self._loop.call_soon_threadsafe, task.cancel)
            self.producers.append(producer)
            log.info("producer %s started", cls.__qualname__)

    async def _on_stop(self) -> None:
        timeout = self.config.shutdown_timeout
        deadline = asyncio.get_running_loop().time() + timeout
        if self.livesocket is not None and self._livesocket_server is not None:
            await self.livesocket.aclose()
            self._livesocket_server.stop()
        for producer in self.producers:
            await self._call_stop_hook(producer)
        await self._settle_until(deadline)
        for _, subscriptions in self._runners:
            for subscription in subscriptions:
                await subscription.cancel()
        for subscription in self._bridges:
            await subscription.cancel()
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        await asyncio.gather(*(runner.stop(remaining) for runner, _ in self._runners))
        for consumer in self.consumers:
            await self._call_stop_hook(consumer)
        await super()._on_stop()

    async def _settle_until(self, deadline: float) -> None:
        """Wait (at most until ``deadline``) until consumers have nothing left to do.

        Subscriptions stay open meanwhile, so what consumers publish to each
        other while finishing their backlog still arrives.
        """
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            if not self._background and all(runner.idle for runner, _ in self._runners):
                return
            await asyncio.sleep(0.01)

    @staticmethod
    async def _call_stop_hook(plugin: Consumer | Producer) -> None:
        try:
            await asyncio.to_thread(plugin.stop)
        except Exception:
            log.exception("%s.stop failed", type(plugin).__name__)
