"""A FastAPI app with a live widget and a form that publishes, hub included.

Run it (one process: FastAPI, the hub and the live socket, on one port)::

    python -m pip install fastapi uvicorn
    python examples/fastapi_app/app.py       # then open http://127.0.0.1:8000/ twice
    # or: uvicorn --app-dir examples/fastapi_app app:app

What one window sends through the form appears at once in every open window.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from moksha.web import EmbeddedMoksha, web_context
from moksha.widgets import LiveWidget

TOPIC = "example.chat"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Chat (FastAPI)</title>
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


api = FastAPI(title="Chat")


@api.get("/", response_class=HTMLResponse)
async def index() -> str:
    return PAGE.format(chat=ChatLog().render())


@api.post("/say")
async def say(request: Request) -> RedirectResponse:
    # A urlencoded form read by hand: FastAPI's Form() would need python-multipart.
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    text = form.get("text", [""])[0].strip()
    if text:
        await web_context(request).hub.publish(TOPIC, {"text": text})  # type: ignore[union-attr]
    return RedirectResponse("/", status_code=303)


# The hub and its live socket start with the server (its lifespan), on its event loop.
app = EmbeddedMoksha(api, {"moksha.backends": "memory"}, consumers=[], producers=[])

if __name__ == "__main__":
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="The FastAPI chat example.")
    parser.add_argument("--port", type=int, default=8000)
    uvicorn.run(app, host="127.0.0.1", port=parser.parse_args().port)
