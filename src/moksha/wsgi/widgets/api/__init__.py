"""The original ``moksha.wsgi.widgets.api``: ``LiveWidget`` and ``get_moksha_socket``.

::

    from moksha.wsgi.widgets.api import LiveWidget

    class HelloWorldWidget(LiveWidget):
        topic = "helloworld"
        onmessage = "$('#${id} ul').prepend($('<li/>').text(json.msg));"
        template = "mako:mypackage.templates.hello"
"""

from moksha.wsgi.widgets.api.live import (
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
