"""``moksha.hub.hub``, the original's module path: :class:`MokshaHub` and :class:`CentralMokshaHub`.

The client lives in :mod:`moksha.hub.client` (its async core in
:mod:`moksha.hub.core`), the plugin-running hub in :mod:`moksha.hub.central`.
"""

from moksha.hub.central import DEAD_LETTER_HEADER, CentralMokshaHub, group_name
from moksha.hub.client import MokshaHub
from moksha.hub.core import ORIGIN_HEADER, HubState

__all__ = [
    "DEAD_LETTER_HEADER",
    "ORIGIN_HEADER",
    "CentralMokshaHub",
    "HubState",
    "MokshaHub",
    "group_name",
]
