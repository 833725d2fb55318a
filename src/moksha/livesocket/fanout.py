"""Fan-out from the hub to live-socket clients (WebSocket and SSE alike).

One hub subscription (``#``) feeds every client.  Per message, the body's JSON
text, the event id and the frame (text, then bytes on first use) are made
once; each client whose subscriptions match gets it once, however many of its
patterns match: written straight to its transport when it has a
:class:`~moksha.livesocket.direct.Sink` and keeps up (no task, no ``await``
per client), else on its bounded :class:`~moksha.livesocket.outbox.Outbox`.
A pattern means the same as everywhere in Moksha (:mod:`moksha.topics`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from moksha.config import Config
from moksha.errors import MokshaError
from moksha.livesocket.bindings import Bindings
from moksha.livesocket.direct import Sink, WireFrame
from moksha.livesocket.history import History, history_from_config, split_event_id
from moksha.livesocket.history_cluster import ClusterHistory
from moksha.livesocket.outbox import Outbox
from moksha.livesocket.protocol import (
    CLOSE_SLOW,
    LiveSocketPolicy,
    Session,
    encode_event,
    position_frame,
    recovered_frame,
)
from moksha.message import JSON, Message
from moksha.topics import TopicRouter

if TYPE_CHECKING:
    from moksha.cluster import ClusterNode
    from moksha.hub import MokshaHub

__all__ = ["Client", "LiveSocket"]

log = logging.getLogger("moksha.livesocket")

SLOW_REASON = "client too slow: queue full"
RECORDER_LOCK = "livesocket:history"  # the node that records every message, with bind on demand
CLOSE_RESTART = 1012  # RFC 6455 "service restart": the JS client reconnects (elsewhere)
RESTART_REASON = "this node is stopping: reconnect, to another node if there is one"


def body_text(message: Message) -> str:
    """The body as JSON text, ready to splice into a frame (raw bodies become JSON strings)."""
    if message.content_type == JSON:
        return message.payload.decode()
    body = message.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    return json.dumps(body, ensure_ascii=False)


def sequence_of(event_id: str) -> int:
    """The sequence number of an event id the history issued."""
    parts = split_event_id(event_id)
    assert parts is not None, event_id
    return parts[1]


@dataclass(eq=False, slots=True)
class Client:
    """One connected client: its protocol session, its outbox and, when it has one, its sink.

    A client with a :class:`~moksha.livesocket.direct.Sink` gets each frame
    written at once while it keeps up; its outbox holds frames only while it
    is behind (its transport's buffer over the high-water mark), and the sink
    says when to write them.  A client without a sink (SSE, another ASGI
    server) has a writer task draining its outbox.

    Attributes:
        close_code: set when the fan-out decided the client must go (too slow).
        behind: frames wait in the outbox (only ever True for a client with a sink).
    """

    session: Session
    outbox: Outbox
    kind: str = "websocket"
    sink: Sink | None = None
    close_code: int | None = None
    behind: bool = False
    _held: list[tuple[int, str, WireFrame]] | None = field(default=None, repr=False)
    # topic → the newest seq replayed from history: a live frame at or below it was sent
    # already (in a cluster, another node may have stored it before this one received it).
    _replayed: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.sink is not None:
            self.sink.on_writable = self.catch_up

    def offer(self, seq: int, topic: str, frame: WireFrame) -> None:
        """Deliver a message frame: now, queued, conflated, or by closing a client too slow."""
        if self._held is not None:
            self._held.append((seq, topic, frame))
            return
        if self._replayed:
            floor = self._replayed.get(topic)
            if floor is not None:
                if seq <= floor:
                    return
                del self._replayed[topic]
        sink = self.sink
        if sink is not None and not self.behind:
            if not sink.paused:
                sink.write(frame)
                return
            self.behind = True
        if not self.outbox.put(topic, frame.text) and self.close_code is None:
            self.close_code = CLOSE_SLOW
            self.outbox.close()
            if sink is not None:
                sink.close(CLOSE_SLOW, SLOW_REASON)

    def control(self, text: str) -> None:
        """Deliver a frame that is never dropped (replayed history, errors, notices)."""
        sink = self.sink
        if sink is not None and not self.behind and not sink.paused:
            sink.write(WireFrame(text))
        else:
            self.behind = sink is not None
            self.outbox.put_control(text)

    def catch_up(self) -> None:
        """Write what waited in the outbox; called by the sink once its buffer drained."""
        sink = self.sink
        if sink is None or self.close_code is not None:
            return
        for text in self.outbox.take():
            sink.write(WireFrame(text))
        # Still over the high-water mark: the next frames wait for the next call.
        self.behind = sink.paused


class LiveSocket:
    """Connects live-socket clients to a hub.

    Args:
        hub: a running hub.
        config: supplies the policy, the history and the queue settings.
        history: the recovery history; by default the cluster's when ``cluster`` is
            given, else the one the config describes.
        cluster: this node's cluster membership (``moksha.cluster.url``), if any:
            history and event ids are then shared by every node, and the node's
            heartbeat reports this live socket's clients.
    """

    def __init__(
        self,
        hub: MokshaHub,
        config: Config,
        history: History | None = None,
        *,
        cluster: ClusterNode | None = None,
    ) -> None:
        self.hub = hub
        self.cluster = cluster
        self.policy = LiveSocketPolicy.from_config(config)
        if history is None and cluster is not None:
            history = ClusterHistory(cluster.store)
        self.history = history if history is not None else history_from_config(config)
        self.queue_size = int(config.get("moksha.livesocket.queue_size", 1000))
        self.clients: set[Client] = set()
        self.slow_disconnects = 0
        # Set by drain(): new clients are refused (the node is stopping).
        self.draining = False
        self._closing: set[Sink] = set()  # drained WebSockets whose closing handshake is on
        self._changed = asyncio.Event()  # a client left or a closing WebSocket ended
        self._history_down = False
        self._bindings: Bindings | None = None
        self._recorder: asyncio.Task[None] | None = None
        self._bind_on_demand = Config.coerce(config).livesocket_bind_on_demand
        self._router: TopicRouter[Client] = TopicRouter()

    async def start(self) -> None:
        """Open the history, then start receiving every message of the hub."""
        await self.history.__aenter__()
        await self.hub.asubscribe("#", self._on_message)
        if self._bind_on_demand:
            bindings = Bindings(partial(self.hub.arebind, self._on_message))
            if await bindings.start():
                self._bindings = bindings
            else:
                log.info("this backend cannot bind on demand: the live socket binds #")
        if self.cluster is not None:
            self.cluster.reporters["livesocket"] = self._report
            if self._bindings is not None:
                # No node receives what no client wants: one node, the history's
                # leader, still records everything, so any client can recover.
                lead = self.cluster.lead(RECORDER_LOCK, self._record_everything)
                self._recorder = asyncio.create_task(lead, name="moksha history recorder")

    async def aclose(self) -> None:
        """Stop receiving; close every client and the history."""
        if self._recorder is not None:
            self._recorder.cancel()
            await asyncio.gather(self._recorder, return_exceptions=True)
        if self._bindings is not None:
            await self._bindings.aclose()
        await self.hub.aunsubscribe(self._on_message)
        for client in list(self.clients):
            client.outbox.close()
        await self.history.aclose()

    def connect(
        self, session: Session, kind: str = "websocket", sink: Sink | None = None
    ) -> Client:
        """Register a new client; with a ``sink``, frames are written to it directly."""
        outbox = Outbox(self.queue_size, conflate=self.policy.conflate)
        client = Client(session, outbox, kind, sink)
        self.clients.add(client)
        return client

    def drain(self) -> None:
        """Close every client after the frames queued for it, with code 1012 (service restart).

        What a stopping node does first, so its clients reconnect (through the
        load balancer, or to the next URL they know) while the others serve:
        they resume from their last event id, with no gap.  SSE streams end
        after their queued events, and the browser reconnects with ``Last-Event-ID``.
        From now on :attr:`draining` is set: the server refuses new clients.
        :meth:`drained` waits until they are gone.
        """
        self.draining = True
        for client in list(self.clients):
            if client.close_code is None:
                client.close_code = CLOSE_RESTART
            sink = client.sink
            if sink is not None:
                for text in client.outbox.take():
                    sink.write(WireFrame(text))
                sink.close(CLOSE_RESTART, RESTART_REASON)
                self._closing.add(sink)
                sink.when_closed(partial(self._closed, sink))
            client.outbox.close()

    async def drained(self) -> None:
        """Wait until every client is gone and each drained WebSocket finished closing.

        A WebSocket has finished when its client answered the close (it had read
        every frame before it) or the server gave up on it; bound the wait with a timeout.
        """
        while self.clients or self._closing:
            self._changed.clear()
            await self._changed.wait()

    def _closed(self, sink: Sink) -> None:
        self._closing.discard(sink)
        self._changed.set()

    def disconnect(self, client: Client) -> None:
        """Forget a client and its subscriptions."""
        self.clients.discard(client)
        for pattern in list(client.session.subscriptions):
            self._unroute(pattern, client)
        client.outbox.close()
        if client.sink is not None:
            client.sink.on_writable = None
        self.slow_disconnects += client.close_code == CLOSE_SLOW
        self._changed.set()

    async def subscribe(
        self, client: Client, pattern: str, since: str | None = None, position: bool = False
    ) -> None:
        """Start sending ``client`` what matches ``pattern``; replay what it missed first.

        With ``position``, then tell it where the history stands: a client that
        has seen no event yet resumes from there after a reconnection.
        """
        if self._bindings is not None:  # bound on the broker before the client counts on it
            await self._bindings.add(pattern)
        # Read before routing: a resume from it misses nothing this subscription could see.
        at = await self._position() if position else None
        self._router.add(pattern, client)
        if since is not None:
            await self._replay(client, pattern, since)
        if at is not None:
            client.control(position_frame(pattern, at))

    async def _position(self) -> str | None:
        try:
            return await self.history.position()
        except MokshaError as exc:  # a cluster store away: the client resumes as before
            log.debug("no history position for a new subscription: %s", exc)
            return None

    async def _replay(self, client: Client, pattern: str, since: str) -> None:
        # Live frames wait while the history is read, so nothing comes twice or out of order.
        client._held = []
        try:
            events, complete = await self.history.since(pattern, since)
            for event in events:
                if client.session.may_see(event.topic):
                    summary = self._summary(Message(event.topic, payload=event.payload))
                    client.control(encode_event(event.topic, event.payload, event.id, summary))
                client._replayed[event.topic] = sequence_of(event.id)
            client.control(recovered_frame(pattern, complete))
        finally:
            held, client._held = client._held, None
        # What was held goes out unless the replay sent it (per topic: a held frame of
        # another pattern's topic is new to the client whatever its seq).
        for seq, topic, frame in held or ():
            client.offer(seq, topic, frame)

    def unsubscribe(self, client: Client, pattern: str) -> None:
        """Stop sending ``client`` what matches ``pattern``."""
        self._unroute(pattern, client)

    def _unroute(self, pattern: str, client: Client) -> None:
        if self._router.remove(pattern, client) and self._bindings is not None:
            self._bindings.remove(pattern)

    def _report(self) -> dict[str, Any]:
        """What the node's heartbeat says of this live socket: counts, not pattern lists."""
        report = self.stats()
        report["bound"] = len(report["bound"])
        return report

    def stats(self) -> dict[str, Any]:
        """Connections, subscriptions and drops, for the status endpoint and monitoring."""
        return {
            "clients": len(self.clients),
            "websocket": sum(c.kind == "websocket" for c in self.clients),
            "sse": sum(c.kind == "sse" for c in self.clients),
            "subscriptions": len(self._router),
            "conflated": sum(c.outbox.dropped for c in self.clients),
            "slow_disconnects": self.slow_disconnects,
            # What the broker sends this node: its clients' patterns, or all ("#").
            "bound": sorted(self._bindings.bound) if self._bindings is not None else ["#"],
        }

    def _summary(self, message: Message) -> str | None:
        """The summary the message's schema gives it (feed and inspector show it), or None."""
        schemas = self.hub.schemas.registry
        if not schemas.by_name:
            return None
        schema = schemas.for_message(message)
        if schema is None:
            return None
        try:
            return str(schema.view(message).summary)
        except Exception:  # a schema class that cannot read this body: no summary
            return None

    async def _record_everything(self) -> None:
        """While this node leads the history: record every message of the bus (until cancelled).

        Whatever was published while no node recorded (the previous leader died,
        none had taken over) is lost to the history: once subscribed, the gap is
        marked, so clients that were away before it get ``recovered: false``.
        """
        assert self.cluster is not None
        history = ClusterHistory(self.cluster.store)

        async def record(message: Message) -> None:
            try:
                await history.append(message.topic, body_text(message), message.id)
            except MokshaError as exc:
                log.warning("the history recorder could not record %s: %s", message.topic, exc)

        await self.hub.asubscribe("#", record)
        try:
            await history.mark_gap()
            await asyncio.Event().wait()  # until the lead is lost or the node stops
        finally:
            await self.hub.aunsubscribe(record)

    async def _on_message(self, message: Message) -> None:
        topic = message.topic
        text = body_text(message)
        try:
            event_id = await self.history.append(topic, text, message.id)
            seq = sequence_of(event_id)
            self.history.seen(event_id, topic, message.id)
            if self._history_down:
                log.info("the live socket's history works again")
                self._history_down = False
        except MokshaError as exc:
            # The cluster's store is unreachable: deliver anyway, with no id to resume from
            # (a client reconnecting meanwhile gets recovered: false), rather than nothing.
            if not self._history_down:
                log.warning("live-socket history failed, delivering without ids: %s", exc)
            self._history_down = True
            event_id, seq = "", sys.maxsize
        clients = self._router.match(topic)
        if not clients:
            return
        frame = WireFrame(encode_event(topic, text, event_id, self._summary(message)))
        for client in dict.fromkeys(clients):  # once, however many of its patterns match
            if client.session.may_see(topic):
                client.offer(seq, topic, frame)
