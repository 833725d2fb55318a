"""The original ``LiveWidget``: a ToscaWidgets2 widget whose jQuery ``onmessage`` runs per message.

Written as for Moksha 1.x::

    from moksha.wsgi.widgets.api import LiveWidget

    class HelloWorldWidget(LiveWidget):
        topic = "helloworld"
        onmessage = "$('#${id} ul').prepend($('<li/>').text(json.msg));"
        template = "mako:mypackage.templates.hello"

It is a real ``tw2.core`` widget (params, ``prepare()``, ``display()``,
``resources``), rendered by tw2 and followed by the same subscribing script
as :class:`moksha.widgets.LiveWidget`: ``onmessage`` runs with ``json`` (the
body), ``topic`` and ``message``, ``${id}`` replaced by the widget's id, on
the page's one live-socket connection.  Its resources bring the live-socket
client and jQuery (from the ``XStatic-jQuery`` package, served by Moksha), so
jQuery is on exactly the pages showing such a widget, once.

``backend`` (``stomp``, ``amqp``, ``websocket``) is accepted and ignored: the
live socket serves every bus the hub is connected to.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import tw2.core as twc
import tw2.core.widgets
from markupsafe import Markup

from moksha.topics import topics_of
from moksha.widgets.live import MOKSHA_JS, live_script
from moksha.widgets.widget import WidgetError
from moksha.wsgi.toscawidgets import install

# From here on tw2 keeps each request's state in Moksha's context, not per thread.
install()

__all__ = [
    "JQUERY_JS",
    "LiveWidget",
    "LiveWidgetMeta",
    "MokshaSocket",
    "get_moksha_socket",
]

JQUERY_JS = twc.JSLink(modname="xstatic.pkg.jquery", filename="data/jquery.min.js")
"""jQuery, as packaged by XStatic-jQuery: what original ``onmessage`` code calls ``$``."""

_MOKSHA_JS = twc.JSLink(link=MOKSHA_JS.src)


class LiveWidgetMeta(tw2.core.widgets.WidgetMeta):  # type: ignore[misc]
    """The metaclass of live widgets (the original's way to tell them apart)."""


class LiveWidget(twc.Widget, metaclass=LiveWidgetMeta):  # type: ignore[misc]
    """A ToscaWidgets2 widget subscribed to ``topic``; ``onmessage`` runs for each message.

    Attributes:
        topic: a pattern, a space-separated string of them, or a list.
        topics: more patterns (the original read both attributes).
        onmessage: JavaScript run per message with ``json``, ``topic`` and
            ``message``; ``${id}`` is replaced by the widget's id.
        backend: accepted for Moksha 1.x code and ignored.
    """

    topic = twc.Param("Topic(s) this widget subscribes to", default=None)
    onmessage = twc.Param("JavaScript to run for each message", default=None)
    backend = twc.Param("Ignored: the live socket serves every backend", default=None)
    resources = [_MOKSHA_JS, JQUERY_JS]

    @classmethod
    def get_topics(cls) -> list[str]:
        """The patterns of the class's ``topic`` and ``topics`` (strings split at spaces)."""
        return _patterns(cls)

    def prepare(self) -> None:
        """Check ``onmessage`` and the topics, and give the widget an id if it has none.

        Raises:
            WidgetError: no ``onmessage`` or no topic.
        """
        if not getattr(self, "id", None):
            self.id = f"live-{secrets.token_hex(4)}"
            self.compound_id = self.id
        if not self.onmessage:
            raise WidgetError(f"{type(self).__name__} must be given an onmessage callback")
        super().prepare()
        if not _patterns(self):
            raise WidgetError(f"{type(self).__name__}: specify a `topic` to subscribe to")

    def generate_output(self, displays_on: str | None) -> str:
        """tw2's output followed by the script subscribing the element to the topics."""
        html = super().generate_output(displays_on)
        script = live_script(str(self.id), _patterns(self), str(self.onmessage))
        return str(Markup(html) + script)


def _patterns(owner: Any) -> list[str]:
    """The patterns of ``owner``'s ``topic`` and ``topics`` (a class, or one display of it)."""
    found: list[str] = []
    for key in ("topic", "topics"):
        value = getattr(owner, key, None)
        if isinstance(value, str):
            found += value.split()
        elif value and not isinstance(value, twc.Param):
            found += topics_of(value)
    return found


class MokshaSocket(twc.Widget):  # type: ignore[misc]
    """What ``get_moksha_socket`` returns: shows nothing, brings the live-socket client."""

    template = ""
    inline_engine_name = "mako"
    resources = [_MOKSHA_JS]

    def generate_output(self, displays_on: str | None) -> str:
        return ""


def get_moksha_socket(config: Mapping[str, Any] | None = None) -> type[MokshaSocket]:
    """The live-socket widget original templates display once per page.

    Args:
        config: the app's configuration; its ``moksha.livesocket.backend`` is
            ignored, since one live socket now serves every backend.

    Returns:
        A tw2 widget: ``display()`` shows nothing and puts ``/livesocket/moksha.js``
        on the page (Moksha's own live widgets add it themselves, so it is optional).
    """
    return MokshaSocket
