"""Fan-out from the hub to live-socket clients (WebSocket and SSE alike).

One hub subscription (``#``) feeds every client.  Per message, the body's JSON
text and the event id are computed once; each client whose subscriptions
match gets a frame on its bounded :class:`~moksha.livesocket.outbox.Outbox`.
A pattern means the same as everywhere in Moksha (:mod:`moksha.topics`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moksha.livesocket.history import History, history_from_config, split_event_id
from moksha.livesocket.outbox import Outbox
from moksha.livesocket.protocol import (
    CLOSE_SLOW,
    LiveSocketPolicy,
    Session,
    encode_event,
)
from moksha.message import JSON, Message
from moksha.topics import TopicRouter

if TYPE_CHECKING:
    from moksha.config import Config
    from moksha.hub import MokshaHub

__all__ = ["Client", "LiveSocket"]

log = logging.getLogger("moksha.livesocket")

RECOVERED = "__recovered__"


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


@dataclass(eq=False)
class Client:
    """One connected client: its protocol session and its outbox.

    Attributes:
        close_code: set when the fan-out decided the client must go (too slow).
    """

    session: Session
    outbox: Outbox
    kind: str = "websocket"
    close_code: int | None = None
    _held: list[tuple[int, str, str]] | None = field(default=None, repr=False)

    def offer(self, seq: int, topic: str, frame: str) -> None:
        if self._held is not None:
            self._held.append((seq, topic, frame))
        elif not self.outbox.put(topic, frame) and self.close_code is None:
            self.close_code = CLOSE_SLOW
            self.outbox.close()


class LiveSocket:
    """Connects live-socket clients to a hub.

    Args:
        hub: a running hub.
        config: supplies the policy, the history and the queue settings.
        history: the recovery history; by default the one the config describes.
    """

    def __init__(self, hub: MokshaHub, config: Config, history: History | None = None) -> None:
        self.hub = hub
        self.policy = LiveSocketPolicy.from_config(config)
        self.history = history if history is not None else history_from_config(config)
        self.queue_size = int(config.get("moksha.livesocket.queue_size", 1000))
        self.clients: set[Client] = set()
        self.slow_disconnects = 0
        self._router: TopicRouter[Client] = TopicRouter()

    async def start(self) -> None:
        """Open the history, then start receiving every message of the hub."""
        await self.history.__aenter__()
        await self.hub.asubscribe("#", self._on_message)

    async def aclose(self) -> None:
        """Stop receiving; close every client and the history."""
        await self.hub.aunsubscribe(self._on_message)
        for client in list(self.clients):
            client.outbox.close()
        await self.history.aclose()

    def connect(self, session: Session, kind: str = "websocket") -> Client:
        """Register a new client."""
        client = Client(session, Outbox(self.queue_size, conflate=self.policy.conflate), kind)
        self.clients.add(client)
        return client

    def disconnect(self, client: Client) -> None:
        """Forget a client and its subscriptions."""
        self.clients.discard(client)
        for pattern in list(client.session.subscriptions):
            self._router.remove(pattern, client)
        client.outbox.close()
        self.slow_disconnects += client.close_code == CLOSE_SLOW

    async def subscribe(self, client: Client, pattern: str, since: str | None = None) -> None:
        """Start sending ``client`` what matches ``pattern``; replay what it missed first."""
        self._router.add(pattern, client)
        if since is None:
            return
        # Live frames wait while the history is read, so nothing comes twice or out of order.
        client._held = []
        try:
            events, complete = await self.history.since(pattern, since)
            last = 0
            for event in events:
                if client.session.may_see(event.topic):
                    client.outbox.put_control(encode_event(event.topic, event.payload, event.id))
                last = sequence_of(event.id)
            recovered = {"topic": RECOVERED, "body": {"pattern": pattern, "recovered": complete}}
            client.outbox.put_control(json.dumps(recovered))
        finally:
            held, client._held = client._held, None
        for seq, topic, frame in held or ():
            if seq > last:
                client.offer(seq, topic, frame)

    def unsubscribe(self, client: Client, pattern: str) -> None:
        """Stop sending ``client`` what matches ``pattern``."""
        self._router.remove(pattern, client)

    def stats(self) -> dict[str, Any]:
        """Connections, subscriptions and drops, for the status endpoint and monitoring."""
        return {
            "clients": len(self.clients),
            "websocket": sum(c.kind == "websocket" for c in self.clients),
            "sse": sum(c.kind == "sse" for c in self.clients),
            "subscriptions": len(self._router),
            "conflated": sum(c.outbox.dropped for c in self.clients),
            "slow_disconnects": self.slow_disconnects,
        }

    async def _on_message(self, message: Message) -> None:
        topic = message.topic
        text = body_text(message)
        event_id = await self.history.append(topic, text)
        clients = self._router.match(topic)
        if not clients:
            return
        frame = encode_event(topic, text, event_id)
        seq = sequence_of(event_id)
        for client in dict.fromkeys(clients):  # once, however many of its patterns match
            if client.session.may_see(topic):
                client.offer(seq, topic, frame)
