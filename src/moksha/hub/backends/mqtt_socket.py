"""A paho-mqtt client's socket driven by the asyncio event loop, as paho's asyncio example does.

paho calls back when its socket opens or closes and when it has bytes to
send; here the loop then watches the socket: ``loop_read`` when readable,
``loop_write`` at the end of the loop's turn (a burst of acks is one write,
and the socket is watched for room only when it could not take them all),
``loop_misc`` every second for keep-alives.  Two socket options make up for
defaults that cost ~40 ms a round trip on a request/reply pattern: paho
leaves Nagle on (we set ``TCP_NODELAY``), and so does Mosquitto
(``set_tcp_nodelay false``), whose PUBACK written right after a delivery to
us then waits for our delayed ACK (we ask Linux for a quick ACK while a
reply is awaited).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

__all__ = ["PahoOnLoop"]

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
_READS_PER_WAKE = 64


class PahoOnLoop:
    """Registers itself for ``client``'s socket callbacks and runs them on ``loop``.

    Args:
        loop: the running event loop (its thread is the one calling this).
        client: a paho client not started with ``loop_start``.
        progress: a number that grows whenever paho reported something (a burst
            is read on while packets keep coming).
        replies: whether a reply (PUBACK, SUBACK) is awaited right now.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        client: paho.Client,
        *,
        progress: Callable[[], int],
        replies: Callable[[], bool],
    ) -> None:
        self._loop = loop
        self._thread = threading.get_ident()
        self._client = client
        self._progress = progress
        self._replies = replies
        self._fd: int | None = None
        self._sock: Any = None
        self._want_write = False
        self._flush_soon = False
        client.on_socket_open = lambda _c, _u, sock: self._on_loop(self._watch, sock)
        client.on_socket_close = lambda _c, _u, _sock: self._on_loop(self._unwatch, None)
        client.on_socket_register_write = lambda _c, _u, _s: self._on_loop(self._write_soon, None)
        client.on_socket_unregister_write = lambda _c, _u, _s: self._on_loop(self._written, None)

    def _on_loop(self, action: Callable[[Any], None], sock: Any) -> None:
        """Run ``action(sock)`` now on the loop's thread, or soon from a connecting thread."""
        if threading.get_ident() == self._thread:
            action(sock)
        else:
            self._loop.call_soon_threadsafe(action, sock)

    def _watch(self, sock: Any) -> None:
        if self._fd is not None:
            self._unwatch(None)
        self._fd = sock.fileno()
        self._sock = sock
        with contextlib.suppress(OSError, AttributeError):  # TLS sockets take it alike
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._loop.add_reader(self._fd, self._readable)

    def _unwatch(self, _sock: Any) -> None:
        # By number: paho closes the socket right after telling us.
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._fd = None

    def unwatch(self) -> None:
        """Stop watching the socket (the connection is being closed)."""
        self._unwatch(None)

    def _readable(self) -> None:
        # paho's loop_read takes one packet when nothing of ours is in flight: go on
        # while packets keep coming, so a burst is one wake-up.
        for _ in range(_READS_PER_WAKE):
            before = self._progress()
            if self._client.loop_read() != paho.MQTT_ERR_SUCCESS or self._fd is None:
                return
            if self._progress() == before:
                break
        if _QUICKACK is not None and self._replies():
            with contextlib.suppress(OSError, AttributeError):  # the flag does not stay set
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    def _write_soon(self, _sock: Any) -> None:
        self._want_write = True
        if not self._flush_soon:
            self._flush_soon = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        if self._fd is None:
            return
        self._client.loop_write()
        if self._want_write:  # paho still holds some: wait until the socket has room
            self._loop.add_writer(self._fd, self._client.loop_write)

    def _written(self, _sock: Any) -> None:
        self._want_write = False
        if self._fd is not None:
            self._loop.remove_writer(self._fd)

    async def keep_alive(self) -> None:
        """Call ``loop_misc`` every second (pings, and noticing a silent broker)."""
        while True:
            await asyncio.sleep(1.0)
            self._client.loop_misc()
