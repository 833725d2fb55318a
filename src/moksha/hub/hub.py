"""``moksha.hub.hub``, the original's module path: :class:`MokshaHub` and :class:`CentralMokshaHub`.

The client lives in :mod:`moksha.hub.client`, the plugin-running hub in
:mod:`moksha.hub.central`.
"""

from moksha.hub.central import DEAD_LETTER_HEADER, CentralMokshaHub, group_name
from moksha.hub.client import ORIGIN_HEADER, HubState, MokshaHub

__all__ = [
    "DEAD_LETTER_HEADER",
    "ORIGIN_HEADER",
    "CentralMokshaHub",
    "HubState",
    "MokshaHub",
    "group_name",
]
