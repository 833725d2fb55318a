"""The original ``moksha.wsgi.widgets.api.live`` path (see :mod:`.live`)."""

from moksha.wsgi.widgets.api.live.live import (
    JQUERY_JS,
    LiveWidget,
    LiveWidgetMeta,
    MokshaSocket,
    get_moksha_socket,
)

__all__ = [
    "JQUERY_JS",
    "LiveWidget",
    "LiveWidgetMeta",
    "MokshaSocket",
    "get_moksha_socket",
]
