"""The live socket: browsers and other processes on the bus over WebSocket and SSE.

The protocol and its rules are sans-I/O (:mod:`.protocol`, :mod:`.policy`,
:mod:`.tokens`): they turn frames into actions and never touch a socket.
:mod:`.fanout` connects clients to a hub, :mod:`.history` keeps what they may
have missed, and :mod:`.server` is the HTTP face (WebSocket, SSE, publish,
the JavaScript client).
"""

from moksha.livesocket.fanout import LiveSocket
from moksha.livesocket.history import Event, History, MemoryHistory, history_from_config
from moksha.livesocket.policy import LiveSocketPolicy, origin_allowed
from moksha.livesocket.protocol import (
    Action,
    Close,
    Publish,
    Reply,
    Session,
    Subscribe,
    Unsubscribe,
    encode_event,
    error_frame,
    recovered_frame,
)
from moksha.livesocket.server import LiveSocketServer, client_script, listen, livesocket_app
from moksha.livesocket.tokens import TokenError, make_token

__all__ = [
    "Action",
    "Close",
    "Event",
    "History",
    "LiveSocket",
    "LiveSocketPolicy",
    "LiveSocketServer",
    "MemoryHistory",
    "Publish",
    "Reply",
    "Session",
    "Subscribe",
    "TokenError",
    "Unsubscribe",
    "client_script",
    "encode_event",
    "error_frame",
    "history_from_config",
    "listen",
    "livesocket_app",
    "make_token",
    "origin_allowed",
    "recovered_frame",
]
