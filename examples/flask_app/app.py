"""A Flask app with a live widget and a form that publishes, hub included.

Run it (one process: Flask, the hub and its live socket)::

    python -m pip install flask
    python examples/flask_app/app.py      # then open http://127.0.0.1:5000/ twice

What one window sends through the form appears at once in every open window.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, redirect, request

from moksha.hub import CentralMokshaHub
from moksha.web import MokshaWSGIMiddleware
from moksha.widgets import LiveWidget

TOPIC = "example.chat"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Chat (Flask)</title>
<link rel="icon" href="data:,"></head>
<body>
<h1>Chat</h1>
<form method="post" action="/say">
  <input name="text" aria-label="Message" autocomplete="off" required>
  <button>Send</button>
</form>
{chat}
</body></html>"""


class ChatLog(LiveWidget):
    """The newest line first; ``json`` is the message body, ``this`` the widget's element."""

    topic = TOPIC
    template = "<ul id='{{ id }}' class='chat-log'></ul>"
    onmessage = (
        "var line = document.createElement('li');line.textContent = json.text;this.prepend(line);"
    )


def create_app(settings: dict[str, Any] | None = None) -> Flask:
    """The Flask app, with a hub running in this process (on a thread of its own).

    Args:
        settings: Moksha settings over the defaults below (the config file and
            ``MOKSHA_*`` variables apply too).
    """
    hub = CentralMokshaHub(
        {
            # WSGI has no WebSocket: the hub serves the live socket on a port of its
            # own (0: any free one); the middleware points the pages at it.
            "moksha.livesocket.backend": "websocket",
            "moksha.livesocket.websocket.port": 0,
            **(settings or {}),
        },
        consumers=[],
        producers=[],
    )
    app = Flask(__name__)
    app.wsgi_app = MokshaWSGIMiddleware(app.wsgi_app, hub=hub)  # type: ignore[method-assign]
    app.extensions["moksha.hub"] = hub
    chat = ChatLog()

    @app.get("/")
    def index() -> str:
        return PAGE.format(chat=chat.render())

    @app.post("/say")
    def say() -> Any:
        text = request.form.get("text", "").strip()
        if text:
            hub.send_message(TOPIC, {"text": text})  # waits until the bus took it
        return redirect("/", code=303)

    return app


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="The Flask chat example.")
    parser.add_argument("--port", type=int, default=5000)
    create_app().run(host="127.0.0.1", port=parser.parse_args().port)
