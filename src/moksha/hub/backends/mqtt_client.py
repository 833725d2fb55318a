"""One MQTT 5 connection (paho-mqtt 2 driven by the asyncio event loop) seen from asyncio.

paho-mqtt's socket is watched by the event loop itself
(:mod:`~moksha.hub.backends.mqtt_socket`): no network thread, so no
hand-over between threads per message.  Only the blocking TCP connect runs
in a worker thread; after a
lost connection this module reconnects with a growing delay.  Everything
paho reports (messages, acknowledgements of our publishes and
subscriptions, connects and disconnects) goes into one queue drained in a
single callback, so paho's callbacks never re-enter it.

Received QoS 1 messages are acknowledged only when the owner calls
:meth:`MQTTConnection.ack` (paho's ``manual_ack``): after the handler
returned, for at-least-once delivery.  The broker sends at most
``receive_maximum`` unacknowledged messages ahead (MQTT 5 flow control),
which bounds what waits here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from moksha.errors import BackendError, BackendUnavailable
from moksha.hub.backends.mqtt_inbound import MokshaClient
from moksha.hub.backends.mqtt_socket import PahoOnLoop
from moksha.hub.backends.mqtt_wire import MQTTOptions

__all__ = ["MQTTConnection"]

log = logging.getLogger("moksha.hub.backends.mqtt")

CONNECT_TIMEOUT = 10.0
SESSION_TAKEN_OVER = 142


class MQTTConnection:
    """A paho client whose replies are awaited and whose messages reach ``on_message``.

    Args:
        options: the broker (from ``mqtt_url``).
        client_id: the MQTT client id.
        persistent: keep the session (clean start off, ``session_expiry``
            seconds) so what is queued while we are away waits for us.
        receive_maximum: unacknowledged messages the broker may send ahead.
        on_message: called on the event loop with each paho ``MQTTMessage``.
        reconnect_delay: first and longest wait between reconnect attempts.
        will: a retained message (topic, payload) the broker publishes when
            this connection dies without saying goodbye.
    """

    def __init__(
        self,
        options: MQTTOptions,
        client_id: str,
        *,
        persistent: bool,
        session_expiry: int,
        receive_maximum: int,
        on_message: Callable[[paho.MQTTMessage], None],
        reconnect_delay: tuple[float, float] = (1.0, 30.0),
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.client_id = client_id
        self._options = options
        self._persistent = persistent
        self._session_expiry = session_expiry
        self._receive_maximum = receive_maximum
        self._on_message = on_message
        self._reconnect_delay = reconnect_delay
        self._will = will
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: paho.Client | None = None
        self._events: collections.deque[tuple[str, Any]] = collections.deque()
        self._woken = False
        self._waiting: dict[tuple[str, int], asyncio.Future[Any]] = {}
        self._first: asyncio.Future[None] | None = None
        self._filters: dict[str, int] = {}  # filter -> subscription id, renewed on reconnect
        self._loop_thread = 0
        self._socket: PahoOnLoop | None = None
        self._misc: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closing = False
        self.connected = False

    # -- the paho thread: queue and wake ------------------------------------

    def _post(self, kind: str, data: Any) -> None:
        self._events.append((kind, data))
        if not self._woken and self._loop is not None:
            self._woken = True
            if threading.get_ident() == self._loop_thread:
                self._loop.call_soon(self._drain)
                return
            # From a connecting thread.  RuntimeError: the loop closed, nothing waits.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._woken = False
        events = self._events
        while events:
            kind, data = events.popleft()
            if kind == "message":
                self._on_message(data)
            elif kind in ("publish", "subscribe", "unsubscribe"):
                mid, failure = data
                waiter = self._waiting.pop((kind, mid), None)
                if waiter is not None and not waiter.done():
                    if failure is None:
                        waiter.set_result(None)
                    else:
                        waiter.set_exception(BackendError(f"MQTT broker refused: {failure}"))
            elif kind == "connect":
                self._connected(*data)
            elif kind == "disconnect":
                self._disconnected(data)

    # -- on the event loop ----------------------------------------------------

    def _connected(self, failure: str | None, session_present: bool) -> None:
        first = self._first
        if failure is not None:
            if first is not None and not first.done():
                first.set_exception(
                    BackendUnavailable(
                        f"MQTT broker {self._options.host}:{self._options.port} refused "
                        f"client {self.client_id}: {failure}. Check mqtt_url's user and password."
                    )
                )
            return
        self.connected = True
        if first is not None and not first.done():
            first.set_result(None)
        else:
            log.info("MQTT client %s reconnected", self.client_id)
        # A clean session forgot its subscriptions; renewing a kept one changes nothing.
        if not session_present or not self._persistent:
            for mqtt_filter, sid in self._filters.items():
                self._send_subscribe(mqtt_filter, sid)

    def _disconnected(self, reason: ReasonCode | None) -> None:
        was = self.connected
        self.connected = False
        first = self._first
        if first is not None and not first.done():
            first.set_exception(
                BackendUnavailable(
                    f"cannot reach the MQTT broker at {self._options.host}:{self._options.port}; "
                    "check that it is running and that mqtt_url names it"
                )
            )
            return
        if reason is not None and reason.value == SESSION_TAKEN_OVER:
            log.error(
                "MQTT client id %s was taken by another connection: two hubs share a consumer "
                "group with the same mqtt_node; give each hub its own",
                self.client_id,
            )
        elif was:
            log.warning(
                "MQTT client %s lost its connection (%s); reconnecting", self.client_id, reason
            )
        if not self._closing and self._reconnecting is None and self._loop is not None:
            self._reconnecting = self._loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay, longest = self._reconnect_delay
        try:
            while self._client is not None and not self.connected:
                await asyncio.sleep(delay)
                client = self._client
                if client is None:
                    return
                try:
                    await asyncio.to_thread(client.reconnect)
                    return  # CONNACK arrives through loop_read: _connected renews the rest
                except OSError as exc:
                    log.debug("MQTT client %s: reconnect failed (%s)", self.client_id, exc)
                    delay = min(delay * 2, longest)
        finally:
            self._reconnecting = None

    async def open(self) -> None:
        """Connect, with paho's socket watched by the running event loop.

        Raises:
            BackendUnavailable: the broker cannot be reached or refused us.
        """
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._first = self._loop.create_future()
        client = MokshaClient(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5,
            manual_ack=True,
        )
        options = self._options
        if options.username is not None:
            client.username_pw_set(options.username, options.password)
        if options.tls:
            client.tls_set()
        if self._will is not None:
            client.will_set(*self._will, qos=1, retain=True)
        client.max_inflight_messages_set(1000)  # our publishes awaiting PUBACK
        self._socket = PahoOnLoop(
            self._loop,
            client,
            progress=lambda: len(self._events),
            replies=lambda: bool(self._waiting),
        )
        client.on_connect = self._paho_connect
        client.on_disconnect = lambda _c, _u, _f, reason, _p: self._post("disconnect", reason)
        client.on_message = lambda _c, _u, message: self._post("message", message)
        client.on_publish = lambda _c, _u, mid, reason, _p: self._post(
            "publish", (mid, _failure(reason))
        )
        client.on_subscribe = lambda _c, _u, mid, reasons, _p: self._post(
            "subscribe", (mid, next((str(r) for r in reasons if r.is_failure), None))
        )
        client.on_unsubscribe = lambda _c, _u, mid, _r, _p: self._post("unsubscribe", (mid, None))
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._session_expiry if self._persistent else 0
        properties.ReceiveMaximum = self._receive_maximum
        self._client = client
        self._closing = False
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                try:
                    await asyncio.to_thread(
                        client.connect,
                        options.host,
                        options.port,
                        clean_start=not self._persistent,
                        properties=properties,
                    )
                except OSError:
                    self._disconnected(None)  # sets the "cannot reach" error on _first
                self._misc = self._loop.create_task(self._socket.keep_alive())
                await self._first
        except BaseException as exc:
            await self.close()
            if isinstance(exc, TimeoutError):
                raise BackendUnavailable(
                    f"the MQTT broker at {options.host}:{options.port} did not answer within "
                    f"{CONNECT_TIMEOUT:g}s"
                ) from None
            raise

    def _paho_connect(
        self,
        _client: paho.Client,
        _userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        failure = str(reason) if reason.is_failure else None
        self._post("connect", (failure, flags.session_present))

    async def close(self) -> None:
        """Disconnect (unacknowledged messages stay with the broker's session)."""
        client, self._client = self._client, None
        self.connected = False
        self._closing = True
        if client is None:
            return
        for task in (self._misc, self._reconnecting):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        client.disconnect()
        client.loop_write()  # the DISCONNECT, before the socket goes
        if self._socket is not None:
            self._socket.unwatch()
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(BackendError("the MQTT connection closed"))
        self._waiting.clear()

    def _require(self) -> paho.Client:
        if self._client is None:
            raise BackendError("the MQTT connection is closed")
        return self._client

    def publish_nowait(
        self,
        topic: str,
        payload: bytes,
        properties: Properties | None = None,
        *,
        retain: bool = False,
    ) -> asyncio.Future[Any]:
        """Send a QoS 1 PUBLISH now; the future resolves when the broker acknowledged it."""
        info = self._require().publish(topic, payload, qos=1, retain=retain, properties=properties)
        if info.rc == paho.MQTT_ERR_NO_CONN:
            # paho keeps it and sends it once reconnected; its PUBACK resolves the future.
            log.debug("MQTT publish to %s queued until the connection is back", topic)
        elif info.rc != paho.MQTT_ERR_SUCCESS:
            raise BackendError(f"MQTT publish to {topic} failed: {paho.error_string(info.rc)}")
        assert self._loop is not None
        waiter = self._loop.create_future()
        self._waiting[("publish", info.mid)] = waiter
        return waiter

    async def subscribe(self, mqtt_filter: str, sid: int) -> None:
        """Subscribe with QoS 1 and subscription id ``sid``; kept across reconnects."""
        self._filters[mqtt_filter] = sid
        await self._send_subscribe(mqtt_filter, sid)

    def _send_subscribe(self, mqtt_filter: str, sid: int) -> asyncio.Future[Any]:
        assert self._loop is not None
        properties = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
        properties.SubscriptionIdentifier = sid
        _, mid = self._require().subscribe(
            mqtt_filter, options=SubscribeOptions(qos=1), properties=properties
        )
        waiter = self._loop.create_future()
        if mid is not None:
            self._waiting[("subscribe", mid)] = waiter
        else:
            waiter.set_result(None)
        return waiter

    async def unsubscribe(self, mqtt_filter: str) -> None:
        """Drop a subscription (also from a kept session)."""
        self._filters.pop(mqtt_filter, None)
        assert self._loop is not None
        _, mid = self._require().unsubscribe(mqtt_filter)
        if mid is not None:
            waiter = self._loop.create_future()
            self._waiting[("unsubscribe", mid)] = waiter
            await waiter

    def ack(self, message: paho.MQTTMessage) -> None:
        """Acknowledge a received message (it is then the broker's no longer)."""
        if self._client is not None and message.qos > 0:
            self._client.ack(message.mid, message.qos)


def _failure(reason: ReasonCode | None) -> str | None:
    if reason is None or not reason.is_failure:
        return None
    return str(reason)
