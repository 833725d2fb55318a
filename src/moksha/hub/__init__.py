"""The Moksha hub: routes messages between backends, consumers, producers and live sockets.

``from moksha.hub import MokshaHub, CentralMokshaHub`` as in the original.
"""

from moksha.hub.hub import (
    DEAD_LETTER_HEADER,
    ORIGIN_HEADER,
    CentralMokshaHub,
    HubState,
    MokshaHub,
)

__all__ = ["DEAD_LETTER_HEADER", "ORIGIN_HEADER", "CentralMokshaHub", "HubState", "MokshaHub"]
