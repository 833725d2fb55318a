"""``/livesocket/moksha.js`` when the middleware does not serve the live socket itself.

Pages link the JS client on their own origin.  When the live socket runs
elsewhere (a hub's own port, ``moksha.livesocket.backend = websocket``, or
``moksha.livesocket.url``), :meth:`LiveSocketScripts.remote` serves the client
set to connect there.  When none runs anywhere, :meth:`LiveSocketScripts.missing`
serves a stand-in that says what to start, rather than leave live widgets
silently empty.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from moksha.config import Config
from moksha.web.settings import WebSettings

if TYPE_CHECKING:
    from moksha.hub.hub import MokshaHub

__all__ = ["NO_LIVESOCKET", "LiveSocketScripts"]

log = logging.getLogger("moksha.web")


NO_LIVESOCKET = (
    "this page has live widgets but no live socket serves them. Run a hub in this "
    "process (moksha.web.EmbeddedMoksha for an ASGI app; for a WSGI app a "
    "CentralMokshaHub with moksha.livesocket.backend = websocket, passed as hub=), "
    "or start one (moksha start, or moksha hub with moksha.livesocket.backend = "
    "websocket) and set moksha.livesocket.url to its address."
)
"""What pages with live widgets say when the middleware knows of no live socket."""

# The client's API, doing nothing (so widgets load without errors of their own),
# and the message: in the console and at the top of the page.
_NO_LIVESOCKET_CLIENT = """(function (global) {
  var message = MESSAGE;
  var moksha = {
    state: "unavailable", transport: null, url: null,
    subscribe: function () { return function () {}; },
    unsubscribe: function () {}, send_message: function () {},
    connect: function () {}, close: function () {},
    on: function () { return moksha; }, off: function () { return moksha; },
  };
  global.moksha = moksha;
  console.error(message);
  function show() {
    var note = document.createElement("p");
    note.className = "moksha-no-livesocket";
    note.setAttribute("role", "alert");
    note.textContent = message;
    document.body.insertBefore(note, document.body.firstChild);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", show);
  else show();
})(window);
"""


class LiveSocketScripts:
    """The JS client pointing at a live socket served elsewhere, or the stand-in for none.

    Args:
        config: supplies ``moksha.livesocket.websocket.port``.
        settings: supplies ``moksha.livesocket.url``.
        hub: a hub serving the live socket on its own port, if any (its
            ``livesocket_url`` gives the port it really listens on).
    """

    def __init__(self, config: Config, settings: WebSettings, hub: MokshaHub | None) -> None:
        self.config = config
        self.settings = settings
        self.hub = hub
        self._warned = False  # the log says it once per middleware

    async def remote(self, request: Request) -> Response:
        """The JS client, told to connect to the live socket another process serves.

        Pages link ``/livesocket/moksha.js`` on their own origin; when the live
        socket is a hub's own port (``moksha.livesocket.backend = websocket``, or
        ``moksha.livesocket.url``), the client still comes from here and connects there.
        """
        from moksha.livesocket import client_script

        port = self.config.livesocket_websocket_port
        hub_url = getattr(self.hub, "livesocket_url", None)
        if hub_url:  # the port the hub really listens on (the configured one may be 0)
            port = urlsplit(hub_url).port or port
        if port == 0 and not self.settings.livesocket_url:
            # Port 0 means "any free one": which one is known only once the hub started.
            return await self.missing(request)
        base = self.settings.livesocket_url or str(
            request.url.replace(port=port, path="", query="")
        )
        script = f"{client_script()}\nmoksha.connect({{url: {json.dumps(base.rstrip('/'))}}});\n"
        return Response(script, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    async def missing(self, request: Request) -> Response:
        """The JS client's stand-in when no live socket is served: it says what to start.

        The page's live widgets cannot receive anything; rather than leave them
        silently empty, the page shows (and the console and the log say) how to
        give them a live socket.
        """
        if not self._warned:
            self._warned = True
            log.warning(
                "a page at %s has live widgets but no live socket: %s",
                request.url.path,
                NO_LIVESOCKET,
            )
        message = json.dumps("Moksha: " + NO_LIVESOCKET)
        script = _NO_LIVESOCKET_CLIENT.replace("MESSAGE", message)
        return Response(script, media_type="text/javascript", headers={"Cache-Control": "no-cache"})
