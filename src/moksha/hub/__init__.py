"""The Moksha hub: routes messages between backends, consumers, producers and live sockets.

``from moksha.hub import MokshaHub, CentralMokshaHub`` as in the original.
"""

from moksha.hub.hub import CentralMokshaHub, HubState, MokshaHub

__all__ = ["CentralMokshaHub", "HubState", "MokshaHub"]
