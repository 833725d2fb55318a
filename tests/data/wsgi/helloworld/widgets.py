"""Widgets exactly as a Moksha 1.x package wrote them: no line knows about Moksha 2."""

import tw2.core as twc

from moksha.wsgi.widgets.api import LiveWidget


class HelloWorldWidget(LiveWidget):
    topic = "helloworld"
    onmessage = "$('#${id} ul').prepend($('<li/>').text(json.msg));"
    template = "mako:helloworld.templates.hello"


class StatusWidget(twc.Widget):
    template = "genshi:helloworld.templates.status"
    status = twc.Param("What the status line says", default="all quiet")
    resources = [
        twc.JSLink(modname="helloworld", filename="static/status.js"),
        twc.JSSource(src="window.helloworldInline = (window.helloworldInline || 0) + 1;"),
    ]


class InlineWidget(twc.Widget):
    inline_engine_name = "mako"
    template = '<p id="${w.id}" class="inline-hello">inline ${w.greeting}</p>'
    greeting = twc.Param("Whom to greet", default="world")
