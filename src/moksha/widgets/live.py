"""Live widgets: widgets whose JavaScript runs for each message on their topics.

As in the original Moksha::

    from moksha.widgets import LiveWidget

    class HelloWorldWidget(LiveWidget):
        topic = "helloworld"
        onmessage = "document.getElementById('${id}').append(json.msg)"
        template = '<div id="{{ id }}"></div>'

or without a class: ``LiveWidget(topic="helloworld", onmessage="...")``.

``onmessage`` is the body of a JavaScript function called with ``json`` (the
message body), ``topic`` and ``message`` (``{topic, body, id}``); ``this`` is
the widget's element and ``${id}`` in the code is replaced by its id.  Every
live widget of a page shares the page's one live-socket connection
(``window.moksha``, from ``/livesocket/moksha.js``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

from moksha.topics import topics_of
from moksha.web.resources import STATIC_PREFIX, CSSLink, JSLink, Resource
from moksha.web.security import csp_nonce
from moksha.widgets.widget import Param, ParamRefused, Widget, WidgetError

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["MOKSHA_JS", "WIDGETS_CSS", "WIDGETS_JS", "LiveWidget"]

MOKSHA_JS = JSLink("/livesocket/moksha.js")
"""The live-socket client (``window.moksha``), served next to the live socket."""

WIDGETS_JS = JSLink(f"{STATIC_PREFIX}/widgets/moksha-widgets.js", module=True)
"""The web components (``<moksha-feed>``, ``<moksha-chart>``, ...)."""

WIDGETS_CSS = CSSLink(f"{STATIC_PREFIX}/widgets/moksha-widgets.css")
"""Their stylesheet (the components add it themselves when a page lacks it)."""

# The function wrapping ``onmessage``; subscribes once the page's scripts have run,
# since the middleware puts moksha.js at the end of <body>, after the widget.
_SCRIPT = """<script%(nonce)s>
(function (el) {
  function onmessage(json, topic, message) {
%(code)s
  }
  function start() {
    if (!window.moksha) {
      console.error("moksha: live widget " + %(id)s + " needs /livesocket/moksha.js on the page");
      return;
    }
    %(topics)s.forEach(function (pattern) {
      window.moksha.subscribe(pattern, function (m) { onmessage.call(el, m.body, m.topic, m); });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})(document.getElementById(%(id)s));
</script>"""


class LiveWidget(Widget):
    """A widget subscribed to topics; :attr:`onmessage` runs in the browser for each message.

    Attributes:
        topic: a pattern or a list of patterns (``*`` one word, ``#`` any words).
        onmessage: the JavaScript body of ``function (json, topic, message)``.

    Both may also be given as params (``render(topic=...)``), and the
    instance's element is ``this`` in ``onmessage``.
    """

    topic: ClassVar[str | list[str]] = ""
    onmessage: ClassVar[str] = ""
    template = '<div id="{{ id }}" class="{{ css_class }}"></div>'
    params: ClassVar[Mapping[str, Any]] = {
        "topic": Param(None, doc="the pattern(s) to follow; by default the class's topic"),
        "onmessage": Param(None, type=str, doc="JavaScript run per message; default the class's"),
    }
    resources: ClassVar[list[Resource]] = [MOKSHA_JS]
    css_class = "moksha-live"
    page_title = "Live widget"

    def prepare(self, **params: Any) -> dict[str, Any]:
        context = super().prepare(**params)
        topics = topics_of(params["topic"] if params["topic"] is not None else self.topic)
        if not topics:
            raise WidgetError(f"{self.name} needs a topic (a class attribute or the topic param)")
        context["topic"] = topics
        context["onmessage"] = params["onmessage"] or self.onmessage
        return context

    def for_request(self, params: Mapping[str, str], config: Config) -> Widget:
        """As :meth:`Widget.for_request`, but ``onmessage`` never comes from a request.

        Raises:
            ParamRefused: the request gives ``onmessage`` (code anyone could write
                into a link would run on the site's own page).
        """
        if "onmessage" in params:
            raise ParamRefused(
                f"{self.name}: the param 'onmessage' is JavaScript the page would run, so it "
                "cannot come from a link; set it in the widget's class or the site's code"
            )
        return super().for_request(params, config)

    def after_render(self, html: Markup, context: Mapping[str, Any]) -> Markup:
        """Append the script that subscribes the element to the widget's topics."""
        return html + live_script(context["id"], context["topic"], context["onmessage"])


def live_script(element_id: str, topics: list[str], onmessage: str) -> Markup:
    """The ``<script>`` subscribing the element ``element_id`` to ``topics``.

    Args:
        element_id: the element bound to ``this`` (``${id}`` in the code is replaced by it).
        topics: patterns to subscribe to.
        onmessage: JavaScript run with ``json``, ``topic`` and ``message`` per message.
    """
    code = onmessage.replace("${id}", element_id)
    # "</script" (any case) inside the code would end the element early.
    code = code.replace("</", "<\\/")
    # Pages Moksha writes allow inline scripts with the request's nonce only.
    nonce = csp_nonce()
    return Markup(
        _SCRIPT
        % {
            "nonce": f' nonce="{nonce}"' if nonce else "",
            "code": code,
            "id": htmlsafe_json_dumps(element_id),
            "topics": htmlsafe_json_dumps(topics),
        }
    )
