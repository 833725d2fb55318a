"""The live socket's HTTP face: WebSocket, SSE, publish, the JS client, the original embed.

Routes of :func:`livesocket_app` (mount it anywhere; the hub serves it on
``moksha.livesocket.websocket.port`` when ``moksha.livesocket.backend =
websocket``):

=============================  ==================================================
``/`` (WebSocket)              the original's endpoint: subscribe, receive, publish
``/livesocket/ws``             the same, for pages that also serve HTML at ``/``
``/livesocket/sse``            Server-Sent Events: ``?topic=PATTERN`` (repeatable),
                               ``Last-Event-ID`` (or ``?since=``) to resume
``/livesocket/history``        ``?topic=PATTERN&count=N&seconds=S``: the newest stored events,
                               for a page that starts with the recent past
``/livesocket/publish``        ``POST {"topic", "body", "headers", "raw"}``: other processes
                               publish (loopback clients, or a token granting the topic)
``/livesocket/moksha.js``      the JavaScript client (``moksha.mjs``: as an ES module)
``/livesocket?topic=&callback=``  the original embed: calls ``callback(json)`` per message
``/livesocket/status``         clients, subscriptions and drops, as JSON; in a cluster
                               also this node, the nodes alive and the leaders
=============================  ==================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from importlib.resources import files
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from moksha.errors import ConfigError, MokshaError, ValidationError
from moksha.livesocket.direct import DirectWebSocketProtocol, sink_of
from moksha.livesocket.fanout import (
    CLOSE_RESTART,
    RESTART_REASON,
    SLOW_REASON,
    Client,
    LiveSocket,
)
from moksha.livesocket.protocol import (
    SUBSCRIBE,
    Close,
    Publish,
    Reply,
    Session,
    Subscribe,
    Unsubscribe,
    error_frame,
    origin_allowed,
    token_grants,
)

__all__ = ["LiveSocketApp", "LiveSocketServer", "client_script", "listen", "livesocket_app"]

log = logging.getLogger("moksha.livesocket")

SSE_RETRY_MS = 2000
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


WEBSOCKET_PATHS = frozenset({"/", "/livesocket/ws"})


def livesocket_app(live: LiveSocket) -> LiveSocketApp:
    """The ASGI application serving ``live``'s clients."""
    routes = [
        Route("/livesocket/sse", _sse),
        Route("/livesocket/history", _history),
        Route("/livesocket/publish", _publish, methods=["POST"]),
        Route("/livesocket/moksha.js", _client_script),
        Route("/livesocket/moksha.mjs", _client_script),
        Route("/livesocket/status", _status),
        Route("/livesocket", _embed),
    ]
    app = Starlette(routes=routes)
    app.state.live = live
    return LiveSocketApp(live, app)


class LiveSocketApp:
    """The live socket's ASGI application: WebSockets straight to their endpoint, the rest
    through Starlette.

    A WebSocket stays open for hours, and a hub holds thousands: each one waiting
    inside Starlette's middleware and router would keep their frames alive (a few
    KiB per connection), for nothing once the route is known.

    Args:
        live: the live socket.
        http: the Starlette application serving the HTTP routes.
    """

    def __init__(self, live: LiveSocket, http: Starlette) -> None:
        self.live = live
        self.http = http

    @property
    def router(self) -> Router:
        """The HTTP routes' router: add routes to serve more pages on the same port."""
        return self.http.router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        if scope["type"] == "websocket" and path in WEBSOCKET_PATHS:
            await _websocket(self.live, WebSocket(scope, receive, send))
        else:
            await self.http(scope, receive, send)


def _live(request: Request) -> LiveSocket:
    live: LiveSocket = request.app.state.live
    return live


async def _apply(live: LiveSocket, client: Client, actions: list[Any]) -> Close | None:
    """Carry out what the protocol session decided; return a Close when the client must go."""
    for action in actions:
        if isinstance(action, Subscribe):
            await live.subscribe(client, action.pattern, action.since, action.position)
        elif isinstance(action, Unsubscribe):
            live.unsubscribe(client, action.pattern)
        elif isinstance(action, Publish):
            try:
                await live.hub.publish(action.topic, action.body)
            except MokshaError as exc:
                client.control(error_frame(str(exc), None))
        elif isinstance(action, Reply):
            client.control(action.frame)
        elif isinstance(action, Close):
            return action
    return None


DRAINING_ERROR = "this node is stopping: connect to another one"


def _draining_response() -> Response:
    """The answer to a new client while the node drains: try another node."""
    return JSONResponse({"error": DRAINING_ERROR}, status_code=503, headers={"Retry-After": "1"})


async def _websocket(live: LiveSocket, websocket: WebSocket) -> None:
    if live.draining:  # not upgraded: a load balancer tries the next node
        try:
            await websocket.send_denial_response(_draining_response())
        except RuntimeError:  # a server without the denial extension: a plain refusal
            await websocket.close(code=CLOSE_RESTART, reason=RESTART_REASON)
        return
    origin = websocket.headers.get("origin")
    if not origin_allowed(live.policy, origin, websocket.headers.get("host")):
        log.warning("refused a WebSocket from origin %s", origin)
        await websocket.close(code=1008, reason="origin not allowed")
        return
    sink = sink_of(websocket.scope)
    await websocket.accept()
    session = Session(live.policy, token=websocket.query_params.get("token"))
    client = live.connect(session, sink=sink)
    # With a sink, the fan-out writes frames itself: no writer task, no wake-up per message.
    writer = None if sink is not None else asyncio.create_task(_write_websocket(websocket, client))
    try:
        close = await _apply(live, client, session.start())
        while close is None and client.close_code is None:
            event = await websocket.receive()
            if event["type"] == "websocket.disconnect":
                break
            text = event.get("text")
            data = text if text is not None else event.get("bytes") or b""
            close = await _apply(live, client, session.receive(data))
    finally:
        live.disconnect(client)
        if writer is not None:
            await writer
    if close is not None:
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=close.code, reason=close.reason)


async def _write_websocket(websocket: WebSocket, client: Client) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        while frames := await client.outbox.get_batch():
            for frame in frames:
                await websocket.send_text(frame)
        if client.close_code is not None:
            reason = RESTART_REASON if client.close_code == CLOSE_RESTART else SLOW_REASON
            await websocket.close(code=client.close_code, reason=reason)


def _cross_origin_refused(request: Request, live: LiveSocket) -> Response | None:
    """A 403 for a page whose origin the policy does not allow (a browser sent Origin)."""
    origin = request.headers.get("origin")
    if origin_allowed(live.policy, origin, request.headers.get("host")):
        return None
    log.warning("refused a %s request from origin %s", request.url.path, origin)
    return JSONResponse(
        {
            "error": f"pages from {origin} may not use this hub: list it in "
            "moksha.livesocket.allowed_origins"
        },
        status_code=403,
    )


async def _sse(request: Request) -> Response:
    live = _live(request)
    if live.draining:
        return _draining_response()
    refused_origin = _cross_origin_refused(request, live)
    if refused_origin is not None:
        return refused_origin
    patterns = request.query_params.getlist("topic")
    if not patterns:
        return JSONResponse({"error": "name at least one ?topic=PATTERN"}, status_code=400)
    session = Session(live.policy, token=request.query_params.get("token"))
    since = request.headers.get("last-event-id") or request.query_params.get("since")
    position = request.query_params.get("position") == "1"  # moksha.js asks: see position_frame
    client = live.connect(session, kind="sse")
    refused = [action.reason for action in session.start() if isinstance(action, Close)]
    for pattern in patterns:
        body: Any = {"pattern": pattern, "since": since, "position": position}
        frame = json.dumps({"topic": SUBSCRIBE, "body": body})
        for action in session.receive(frame):
            if isinstance(action, Subscribe):
                await live.subscribe(client, action.pattern, action.since, action.position)
            elif isinstance(action, Reply):
                refused.append(json.loads(action.frame)["body"]["error"])
            elif isinstance(action, Close):
                refused.append(action.reason)
    if refused:
        live.disconnect(client)
        return JSONResponse({"error": "; ".join(refused)}, status_code=400)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    origin = request.headers.get("origin")
    if origin:  # an allowed page on another origin must be able to read the stream
        headers |= {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return StreamingResponse(
        _sse_stream(live, client), media_type="text/event-stream", headers=headers
    )


# The most events one history request returns: a chart's points, a feed's page.
MAX_HISTORY_EVENTS = 1000


async def _history(request: Request) -> Response:
    """``GET /livesocket/history?topic=P&count=N&seconds=S``: the recent past of a pattern.

    What a page shows before the first live message (the newest ``count``
    events, none older than ``seconds``), as ``{"events": [{topic, body, id,
    time}]}``, oldest first; the same rules as subscribing (origin, token).
    """
    live = _live(request)
    refused_origin = _cross_origin_refused(request, live)
    if refused_origin is not None:
        return refused_origin
    params = request.query_params
    pattern = params.get("topic")
    try:
        count = min(int(params.get("count", "100")), MAX_HISTORY_EVENTS)
        seconds = float(params["seconds"]) if params.get("seconds") else None
        if count < 0 or (seconds is not None and not seconds > 0):
            raise ValueError
    except ValueError:
        return JSONResponse(
            {"error": "count must be a whole number >= 0 and seconds a number > 0"},
            status_code=400,
        )
    if not pattern:
        return JSONResponse({"error": "name the pattern: ?topic=PATTERN"}, status_code=400)
    session = Session(live.policy, token=params.get("token"))
    frame = json.dumps({"topic": SUBSCRIBE, "body": pattern})
    for action in [*session.start(), *session.receive(frame)]:
        if isinstance(action, Reply):
            error = json.loads(action.frame)["body"]["error"]
            return JSONResponse({"error": error}, status_code=400)
        if isinstance(action, Close):
            return JSONResponse({"error": action.reason}, status_code=400)
    # Protected topics the client may not see are left out before counting.
    wanted = MAX_HISTORY_EVENTS if live.policy.protected else count
    events = await live.history.recent(pattern, wanted, seconds) if count else []
    visible = [e for e in events if session.may_see(e.topic)][-count:] if count else []
    items = ",".join(
        f'{{"topic":{json.dumps(e.topic)},"id":"{e.id}","time":{e.time},"body":{e.payload}}}'
        for e in visible
    )
    headers = {"Cache-Control": "no-store"}
    origin = request.headers.get("origin")
    if origin:  # an allowed page on another origin must be able to read it
        headers |= {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return Response(f'{{"events":[{items}]}}', media_type="application/json", headers=headers)


async def _sse_stream(live: LiveSocket, client: Client) -> AsyncIterator[str]:
    try:
        yield f"retry: {SSE_RETRY_MS}\n\n"
        while frames := await client.outbox.get_batch():
            yield "".join(_sse_event(frame) for frame in frames)
    finally:
        live.disconnect(client)


def _sse_event(frame: str) -> str:
    # A message frame ends with its id (see encode_event), which doubles as the SSE id;
    # event ids hold no quotes, so the last '"id":"' is the one.
    head = ""
    if frame.endswith('"}'):
        start = frame.rfind(',"id":"')
        if start != -1:
            head = f"id: {frame[start + 7 : -2]}\n"
    return f"{head}data: {frame}\n\n"


async def _publish(request: Request) -> Response:
    live = _live(request)
    # A page on any web site could otherwise publish through a browser on this machine.
    refused_origin = _cross_origin_refused(request, live)
    if refused_origin is not None:
        return refused_origin
    try:
        data = await request.json()
        topic, body = data["topic"], data.get("body")
        headers = {str(k): str(v) for k, v in (data.get("headers") or {}).items()}
        raw = data.get("raw") is True  # body is text to send as it is, not JSON
        if not isinstance(topic, str) or not topic:
            raise ValueError("topic must be a non-empty string")
        if raw and not isinstance(body, str):
            raise ValueError("a raw body must be a string")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return JSONResponse({"error": f"expected {{topic, body, headers}}: {exc}"}, status_code=400)
    client_host = request.client.host if request.client else None
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if client_host not in _LOOPBACK and not token_grants(live.policy, token, topic):
        return JSONResponse(
            {"error": "publishing over HTTP needs a loopback client or a token granting the topic"},
            status_code=403,
        )
    try:
        message = await live.hub.publish(topic, body, headers=headers, jsonify=not raw)
    except ValidationError as exc:
        return JSONResponse(
            {"error": str(exc), "schema": exc.schema, "path": exc.path}, status_code=422
        )
    except MokshaError as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    return JSONResponse({"id": message.id, "topic": topic})


def client_script(name: str = "moksha.js") -> str:
    """The JavaScript client's source (``moksha.mjs``: its ES-module face)."""
    return files("moksha.livesocket").joinpath("static", name).read_text()


async def _client_script(request: Request) -> Response:
    return Response(
        client_script(request.url.path.rpartition("/")[2]),
        media_type="text/javascript",
        # Public code: pages on other origins may import it as a module, a CORS fetch.
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


_EMBED_USAGE = "use /livesocket?topic=PATTERN&callback=functionName"


def _embed_problem(topic: str | None, callback: str | None) -> str | None:
    """What is wrong with an embed's query, as a sentence with the fix; None when nothing is."""
    if topic is not None and (topic == "" or topic.endswith(".")) and not callback:
        # "topic=a.b.#&callback=f": the browser took "#..." for the URL's fragment.
        cut = topic + "#"
        return (
            f"the topic pattern reads {topic!r}, cut at a '#': a browser never sends what "
            "follows '#' in a URL (the callback went with it). Write '#' as %23: "
            f"/livesocket?topic={topic}%23&callback=functionName (for {cut!r})"
        )
    if not topic or not callback:
        return f"{_EMBED_USAGE} (this request has no {'topic' if not topic else 'callback'})"
    if not callback.replace("_", "a").replace(".", "a").isalnum():
        return f"the callback {callback!r} is not a function name; {_EMBED_USAGE}"
    return None


async def _embed(request: Request) -> Response:
    topic = request.query_params.get("topic")
    callback = request.query_params.get("callback")
    problem = _embed_problem(topic, callback)
    if problem is not None:
        # A browser runs no script answered with an error status, and this one must run to
        # put the sentence in the console, where the page's author looks: a missing or cut
        # parameter gets 200.  A callback that is no name is refused (400) all the same.
        sentence = json.dumps(f"moksha: {problem}")
        bad_name = bool(topic and callback)
        return Response(
            f"console.error({sentence});\n",
            status_code=400 if bad_name else 200,
            media_type="text/javascript",
        )
    as_json = request.query_params.get("json", "true").lower() != "false"
    call = (
        f"moksha.subscribe({json.dumps(topic)}, function (message) {{"
        f" window.{callback}({'message.body' if as_json else 'JSON.stringify(message.body)'}); }});"
    )
    return Response(f"{client_script()}\n{call}\n", media_type="text/javascript")


async def _status(request: Request) -> Response:
    live = _live(request)
    stats = live.stats()
    if live.cluster is not None:  # this node, the nodes alive, who leads what
        stats["cluster"] = await live.cluster.status()
    return JSONResponse(stats)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0 = a free port).

    Raises:
        ConfigError: the address cannot be used (in use, not this machine's).
    """
    try:
        sock = socket.create_server((host, port))
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another port "
            "or stop what uses it",
            key="moksha.livesocket.websocket.port",
        ) from exc
    # create_server leaves the socket's proto at 0, and asyncio sets TCP_NODELAY on an
    # accepted connection only when its proto says TCP: without it, a response written in
    # two small writes waits out the client's delayed ACK (~40 ms per kept-alive request).
    sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    sock.setblocking(False)
    return sock


class LiveSocketServer:
    """Serves an ASGI app (the live socket, or the whole web app) on a socket, under uvicorn.

    Signals are left to the hub, which owns SIGINT/SIGTERM.

    Args:
        app: the ASGI application.
        sock: a listening socket (see :func:`listen`).
        max_frame: the largest WebSocket frame accepted, in bytes.
    """

    def __init__(self, app: Any, sock: socket.socket, max_frame: int) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            ws_max_size=max_frame,
            ws=DirectWebSocketProtocol,  # frames written straight to the transport
            timeout_graceful_shutdown=2,
        )
        self._server = Server(config)
        self.sock = sock
        host, port = sock.getsockname()[:2]
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"

    async def serve(self) -> None:
        """Serve until :meth:`stop`."""
        await self._server.serve(sockets=[self.sock])

    def stop_accepting(self) -> None:
        """Close the listening socket: new connections are refused, open ones go on.

        A load balancer then sends new clients to the other nodes at once, while
        this one drains the clients it has.
        """
        for server in getattr(self._server, "servers", ()):
            server.close()

    def stop(self) -> None:
        """Ask the server to finish (it closes its connections, then :meth:`serve` returns)."""
        self._server.should_exit = True
