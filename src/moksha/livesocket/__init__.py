"""The live socket: browsers and other processes on the bus over WebSocket and SSE.

The protocol and its rules are sans-I/O (:mod:`.protocol`, :mod:`.policy`,
:mod:`.tokens`): they turn frames into actions and never touch a socket.
"""

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
from moksha.livesocket.tokens import TokenError, make_token

__all__ = [
    "Action",
    "Close",
    "LiveSocketPolicy",
    "Publish",
    "Reply",
    "Session",
    "Subscribe",
    "TokenError",
    "Unsubscribe",
    "encode_event",
    "error_frame",
    "make_token",
    "origin_allowed",
    "recovered_frame",
]
