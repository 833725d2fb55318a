"""The live socket's fast path: frames written straight to a WebSocket's transport.

``websockets.broadcast()`` is fast because it writes each connection's frame
to its transport at once: no task, no ``await``, no wake-up per client.  The
ASGI path costs a coroutine per frame (``await websocket.send_text``) and a
writer task woken for every message, which halved the fan-out rate.

:class:`DirectWebSocketProtocol` is uvicorn's WebSocket protocol (the
``websockets`` sans-I/O one, uvicorn's default) with one addition: it puts
itself in the ASGI scope under :data:`EXTENSION`, so the live socket's
endpoint can hand it to the fan-out as the client's :class:`Sink`.  Frames
then go straight to the transport while the client keeps up; once the
transport's buffer passes its high-water mark (``pause_writing``), frames wait
in the client's bounded outbox, and are written when the buffer drains below
the low-water mark (``resume_writing``).  That is Moksha's back-pressure, which
``broadcast()`` does not have.

Any other ASGI server (or uvicorn with another ``ws`` implementation) gives no
such extension, and the endpoint falls back to the outbox and a writer task.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State

__all__ = ["EXTENSION", "DirectWebSocketProtocol", "Sink", "WireFrame"]

# The ASGI scope extension holding a connection's Sink (a server that has none omits it).
EXTENSION = "moksha.livesocket.direct"


class WireFrame:
    """One frame's text, with its UTF-8 bytes and its unmasked WebSocket frame made once.

    A message going to a thousand clients is encoded once, not once per client;
    the bytes are made on first use, so a frame no direct client needs costs nothing.
    """

    __slots__ = ("_data", "_wire", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._data: bytes | None = None
        self._wire: bytes | None = None

    @property
    def data(self) -> bytes:
        """The text as UTF-8."""
        if self._data is None:
            self._data = self.text.encode()
        return self._data

    @property
    def wire(self) -> bytes:
        """The whole text frame as a server sends it (no mask, no extension)."""
        if self._wire is None:
            self._wire = Frame(Opcode.TEXT, self.data).serialize(mask=False)
        return self._wire


class Sink(Protocol):
    """Where a client's frames can be written synchronously (see the module docstring).

    Attributes:
        paused: the transport's buffer is over its high-water mark: queue instead.
        on_writable: called once the buffer drained below its low-water mark.
    """

    paused: bool
    on_writable: Callable[[], None] | None

    def write(self, frame: WireFrame) -> None:
        """Write one text frame now (nothing happens once the connection is closing)."""

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake with ``code`` and ``reason``."""

    def when_closed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the connection is gone (now, if it is already)."""


class _Events:
    """The three calls uvicorn makes of its per-connection ``asyncio.Queue``, on one deque.

    ``asyncio.Queue`` keeps three deques (~2 KiB) per idle connection; only the
    application's ``receive`` ever waits on this one.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


class DirectWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, offering itself as a :class:`Sink` in the ASGI scope.

    Pass it as uvicorn's ``ws`` setting (``uvicorn.Config(app, ws=DirectWebSocketProtocol)``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Events()  # type: ignore[assignment]
        self.paused = False
        self.on_writable: Callable[[], None] | None = None
        self._on_closed: list[Callable[[], None]] = []

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        # The application's task starts on the loop's next turn, so the scope is still ours.
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope.setdefault("extensions", {})[EXTENSION] = self

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            # The handshake's request and response are not needed again: thousands of idle
            # connections would otherwise each keep a few KiB of headers.
            self.request = self.response = None  # type: ignore[assignment]

    def pause_writing(self) -> None:
        super().pause_writing()
        self.paused = True

    def resume_writing(self) -> None:
        super().resume_writing()
        self.paused = False
        if self.on_writable is not None:
            self.on_writable()

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_writable = None  # the client and this protocol must not keep each other
        super().connection_lost(exc)
        callbacks, self._on_closed = self._on_closed, []
        for callback in callbacks:
            callback()

    def when_closed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the connection is lost (now, if it is already)."""
        if self.disconnected:
            callback()
        else:
            self._on_closed.append(callback)

    def write(self, frame: WireFrame) -> None:
        """Write one text frame to the transport now, as ``websockets.broadcast()`` does."""
        if self.conn.state is not State.OPEN or self.close_sent or self.disconnected:
            return  # closing (either side began the close handshake) or not yet open
        if self.conn.extensions:  # compression keeps state per connection: let it encode
            self.conn.send_text(frame.data)
            self.transport.write(b"".join(self.conn.data_to_send()))
        else:
            self.transport.write(frame.wire)

    def close(self, code: int, reason: str) -> None:
        """Send a close frame now; the application sees ``websocket.disconnect``.

        What uvicorn does for an ASGI ``websocket.close``, without a coroutine.
        """
        if self.close_sent or self.disconnected or self.transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)


def sink_of(scope: Any) -> Sink | None:
    """The connection's :class:`Sink` from an ASGI scope, when the server offers one."""
    sink: Sink | None = (scope.get("extensions") or {}).get(EXTENSION)
    return sink
