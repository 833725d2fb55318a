"""The live socket over real sockets: WebSocket, SSE, HTTP publish, limits, recovery."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets
from websockets.frames import Close, Frame, Opcode

from moksha.hub import CentralMokshaHub
from moksha.livesocket import make_token
from moksha.livesocket.direct import WireFrame
from support import TIMEOUT, until

SECRET = "s" * 40


@asynccontextmanager
async def live_hub(**settings: Any) -> AsyncIterator[CentralMokshaHub]:
    config = {
        "moksha.backends": "memory",
        "moksha.livesocket.backend": "websocket",
        "moksha.livesocket.websocket.port": 0,
        **settings,
    }
    async with CentralMokshaHub(config, [], []) as hub:
        yield hub


def ws_url(hub: CentralMokshaHub, path: str = "/livesocket/ws") -> str:
    assert hub.livesocket_url is not None
    return hub.livesocket_url.replace("http://", "ws://") + path


async def subscribe(ws: Any, pattern: str | dict[str, Any]) -> None:
    await ws.send(json.dumps({"topic": "__topic_subscribe__", "body": pattern}))


async def next_frame(ws: Any) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


def stalled(url: str) -> Any:
    """A client that stops reading at once: a small receive buffer and a one-frame queue.

    The kernel would otherwise buffer megabytes on loopback (``tcp_rmem``
    autotuning) before the server could tell that the client does not read.
    """
    host, port = url.removeprefix("ws://").split("/", 1)[0].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    # Without compression: a repetitive body would otherwise shrink a thousandfold.
    return websockets.connect(
        url, sock=sock, compression=None, max_size=None, max_queue=1, close_timeout=0.5
    )


async def until_subscribed(hub: CentralMokshaHub, count: int = 1) -> None:
    """Subscriptions are processed in order with the frames: wait until the hub has them."""
    assert hub.livesocket is not None
    async with asyncio.timeout(TIMEOUT):
        while hub.livesocket.stats()["subscriptions"] < count:
            await asyncio.sleep(0.01)


async def test_the_original_protocol_at_the_root():
    async with live_hub() as hub, websockets.connect(ws_url(hub, "/")) as ws:
        await subscribe(ws, "org.*.event")
        await until_subscribed(hub)
        await hub.publish("org.other.thing", "no")
        await hub.publish("org.app.event", {"n": 1})
        frame = await next_frame(ws)
    assert frame["topic"] == "org.app.event"
    assert frame["body"] == {"n": 1}
    assert frame["id"]


async def test_unsubscribe_and_disconnect_end_deliveries():
    async with live_hub() as hub:
        async with websockets.connect(ws_url(hub)) as ws:
            await subscribe(ws, "a.#")
            await subscribe(ws, "b")
            await until_subscribed(hub, 2)
            await ws.send(json.dumps({"topic": "__topic_unsubscribe__", "body": "a.#"}))
            async with asyncio.timeout(TIMEOUT):
                while hub.livesocket.stats()["subscriptions"] != 1:
                    await asyncio.sleep(0.01)
            await hub.publish("a.x", 1)
            await hub.publish("b", 2)
            assert (await next_frame(ws))["body"] == 2
        async with asyncio.timeout(TIMEOUT):
            while hub.livesocket.stats()["clients"]:
                await asyncio.sleep(0.01)
        assert hub.livesocket.stats()["subscriptions"] == 0


async def test_bad_frames_get_an_error_and_the_connection_goes_on():
    async with live_hub() as hub, websockets.connect(ws_url(hub)) as ws:
        for bad in ("not json", "[1, 2]", '{"body": 1}', '{"topic": "__nope__", "body": 1}'):
            await ws.send(bad)
            frame = await next_frame(ws)
            assert frame["topic"] == "__error__", bad
            assert frame["body"]["error"]
        await subscribe(ws, "still.works")
        await until_subscribed(hub)
        await hub.publish("still.works", True)
        assert (await next_frame(ws))["body"] is True


async def test_an_oversized_frame_closes_with_1009():
    settings = {"moksha.livesocket.max_frame_bytes": 1000}
    async with live_hub(**settings) as hub, websockets.connect(ws_url(hub)) as ws:
        await ws.send(json.dumps({"topic": "x", "body": "y" * 5000}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.rcvd.code == 1009


async def test_browsers_cannot_publish_unless_allowed():
    received: asyncio.Queue[Any] = asyncio.Queue()
    settings = {"moksha.livesocket.publish_allow": "chat.#"}
    async with live_hub(**settings) as hub, websockets.connect(ws_url(hub)) as ws:
        await hub.asubscribe("#", received.put)
        await ws.send(json.dumps({"topic": "admin.reset", "body": 1}))
        refused = await next_frame(ws)
        await ws.send(json.dumps({"topic": "chat.room", "body": "hello"}))
        message = await asyncio.wait_for(received.get(), TIMEOUT)
    assert refused["topic"] == "__error__"
    assert (message.topic, message.body) == ("chat.room", "hello")


async def test_publishing_is_off_by_default():
    async with live_hub() as hub, websockets.connect(ws_url(hub)) as ws:
        await ws.send(json.dumps({"topic": "anything", "body": 1}))
        frame = await next_frame(ws)
    assert "publish_allow" in frame["body"]["error"]


async def test_a_reconnecting_client_gets_what_it_missed():
    async with live_hub() as hub:
        async with websockets.connect(ws_url(hub)) as ws:
            await subscribe(ws, "feed.#")
            await until_subscribed(hub)
            await hub.publish("feed.a", 1)
            last_id = (await next_frame(ws))["id"]
        for n in (2, 3, 4):
            await hub.publish("feed.a", n)
        await hub.publish("other", "not for us")
        async with websockets.connect(ws_url(hub)) as ws:
            await subscribe(ws, {"pattern": "feed.#", "since": last_id})
            frames = [await next_frame(ws) for _ in range(4)]
    assert [f["body"] for f in frames[:3]] == [2, 3, 4]
    assert frames[3] == {"topic": "__recovered__", "body": {"pattern": "feed.#", "recovered": True}}


async def test_a_client_that_saw_nothing_resumes_from_the_position_it_asked_for():
    async with live_hub() as hub:
        await hub.publish("feed.a", "before anyone came")
        async with websockets.connect(ws_url(hub)) as ws:
            await subscribe(ws, {"pattern": "feed.#", "position": True})
            position = await next_frame(ws)
        for n in (1, 2):  # while it is away, having received nothing
            await hub.publish("feed.a", n)
        async with websockets.connect(ws_url(hub)) as ws:
            await subscribe(ws, {"pattern": "feed.#", "since": position["id"]})
            frames = [await next_frame(ws) for _ in range(3)]
    assert position["topic"] == "__position__"
    assert position["body"] == {"pattern": "feed.#"}
    assert [f["body"] for f in frames[:2]] == [1, 2]  # not what came before it subscribed
    assert frames[2]["body"] == {"pattern": "feed.#", "recovered": True}


async def test_a_client_that_does_not_ask_gets_no_position_frame():
    async with live_hub() as hub, websockets.connect(ws_url(hub)) as ws:
        await subscribe(ws, "feed.#")
        await subscribe(ws, {"pattern": "other", "position": False})
        await until_subscribed(hub, 2)
        await hub.publish("feed.a", 1)
        assert (await next_frame(ws))["body"] == 1  # the original protocol, unchanged


async def test_a_gap_larger_than_the_history_says_so():
    async with live_hub(**{"moksha.livesocket.history.size": 2}) as hub:
        async with websockets.connect(ws_url(hub)) as ws:
            await subscribe(ws, "feed")
            await until_subscribed(hub)
            await hub.publish("feed", 0)
            last_id = (await next_frame(ws))["id"]
        for n in range(1, 6):
            await hub.publish("feed", n)
        async with websockets.connect(ws_url(hub)) as ws:
            await subscribe(ws, {"pattern": "feed", "since": last_id})
            frames = [await next_frame(ws) for _ in range(3)]
    assert [f["body"] for f in frames[:2]] == [4, 5]
    assert frames[2]["body"]["recovered"] is False


async def test_history_survives_a_restart_with_a_sql_store(tmp_path):
    url = f"sqlite:///{tmp_path}/history.sqlite"
    async with live_hub(**{"moksha.livesocket.history.url": url}) as hub:
        async with websockets.connect(ws_url(hub)) as ws:
            await subscribe(ws, "feed")
            await until_subscribed(hub)
            await hub.publish("feed", "before")
            last_id = (await next_frame(ws))["id"]
        await hub.publish("feed", "missed")
    settings = {"moksha.livesocket.history.url": url}
    async with live_hub(**settings) as hub, websockets.connect(ws_url(hub)) as ws:
        await subscribe(ws, {"pattern": "feed", "since": last_id})
        frames = [await next_frame(ws) for _ in range(2)]
    assert frames[0]["body"] == "missed"
    assert frames[1]["body"]["recovered"] is True


async def test_server_sent_events_with_resume():
    async with live_hub() as hub, httpx.AsyncClient(base_url=hub.livesocket_url) as http:
        async with http.stream("GET", "/livesocket/sse", params={"topic": "news.*"}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            await until_subscribed(hub)
            await hub.publish("news.world", {"headline": "x"})
            events = await read_events(response, 1)
        assert events[0]["data"]["body"] == {"headline": "x"}
        last_id = events[0]["id"]
        await hub.publish("news.world", "while away")
        headers = {"Last-Event-ID": last_id}
        params = {"topic": "news.*"}
        async with http.stream(
            "GET", "/livesocket/sse", params=params, headers=headers
        ) as response:
            events = await read_events(response, 2)
    assert events[0]["data"]["body"] == "while away"
    assert events[1]["data"]["topic"] == "__recovered__"


async def test_server_sent_events_start_from_the_position_when_asked():
    async with live_hub() as hub, httpx.AsyncClient(base_url=hub.livesocket_url) as http:
        await hub.publish("news.world", "old")
        params = {"topic": "news.*", "position": "1"}
        async with http.stream("GET", "/livesocket/sse", params=params) as response:
            (position,) = await read_events(response, 1)
        await hub.publish("news.world", "while away")
        headers = {"Last-Event-ID": position["id"]}  # as the browser sends it back
        async with http.stream(
            "GET", "/livesocket/sse", params={"topic": "news.*"}, headers=headers
        ) as response:
            events = await read_events(response, 2)
    assert position["data"]["topic"] == "__position__"
    assert position["id"] == position["data"]["id"]
    assert events[0]["data"]["body"] == "while away"
    assert events[1]["data"]["body"]["recovered"] is True


async def read_events(response: httpx.Response, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    event: dict[str, Any] = {}
    async with asyncio.timeout(TIMEOUT):
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event["id"] = line[4:]
            elif line.startswith("data: "):
                event["data"] = json.loads(line[6:])
            elif not line and "data" in event:
                events.append(event)
                event = {}
                if len(events) == count:
                    return events
    return events


async def test_other_processes_publish_over_http():
    received: asyncio.Queue[Any] = asyncio.Queue()
    async with live_hub() as hub, httpx.AsyncClient(base_url=hub.livesocket_url) as http:
        await hub.asubscribe("cli.#", received.put)
        response = await http.post(
            "/livesocket/publish",
            json={"topic": "cli.test", "body": {"n": 1}, "headers": {"from": "test"}},
        )
        message = await asyncio.wait_for(received.get(), TIMEOUT)
        bad = await http.post("/livesocket/publish", content=b"{")
    assert response.status_code == 200
    assert response.json()["id"] == message.id
    assert (message.body, message.headers["from"]) == ({"n": 1}, "test")
    assert bad.status_code == 400


async def test_protected_topics_need_a_token():
    settings = {
        "moksha.livesocket.protected": "secret.#",
        "moksha.livesocket.token_secret": SECRET,
    }
    token = make_token(SECRET, ["secret.#"], 60)
    async with live_hub(**settings) as hub:
        async with websockets.connect(ws_url(hub)) as anonymous:
            await subscribe(anonymous, "secret.plans")
            refused = await next_frame(anonymous)
        async with websockets.connect(ws_url(hub) + f"?token={token}") as trusted:
            await subscribe(trusted, "secret.plans")
            await until_subscribed(hub)
            await hub.publish("secret.plans", "the plan")
            frame = await next_frame(trusted)
    assert refused["topic"] == "__error__"
    assert token not in json.dumps(refused)
    assert frame["body"] == "the plan"


async def test_a_page_from_another_origin_is_refused():
    async with live_hub() as hub:
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(ws_url(hub), origin="https://evil.example"):
                pass
    allowed = {"moksha.livesocket.allowed_origins": "https://ok.example"}
    async with (
        live_hub(**allowed) as hub,
        websockets.connect(ws_url(hub), origin="https://ok.example") as ws,
    ):
        await subscribe(ws, "x")
        await until_subscribed(hub)


@pytest.mark.parametrize(("policy", "expect_close"), [("disconnect", True), ("conflate", False)])
async def test_a_client_that_does_not_read_cannot_grow_memory(policy, expect_close):
    settings = {"moksha.livesocket.queue_size": 5, "moksha.livesocket.slow_policy": policy}
    body = "x" * 100_000
    async with live_hub(**settings) as hub, stalled(ws_url(hub)) as ws:
        await subscribe(ws, "firehose.*")
        await until_subscribed(hub)
        # Enough to fill the socket buffers, then the 5-frame queue, whatever the machine.
        for i in range(400):
            await hub.publish(f"firehose.{i % 3}", body)
        # The client reads nothing until the server has had to decide what to do.
        client = next(iter(hub.livesocket.clients))
        await until(lambda: client.close_code is not None or client.outbox.dropped > 0)
        stats = hub.livesocket.stats()
        if expect_close:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(TIMEOUT):
                    while True:
                        await ws.recv()
            assert closed.value.rcvd.code == 4008
        else:
            assert stats["conflated"] > 0
            assert len(client.outbox) <= 5
    if expect_close:
        assert hub.livesocket.stats()["slow_disconnects"] == 1


async def test_the_client_script_and_the_original_embed_are_served():
    async with live_hub() as hub, httpx.AsyncClient(base_url=hub.livesocket_url) as http:
        script = await http.get("/livesocket/moksha.js")
        embed = await http.get("/livesocket", params={"topic": "t", "callback": "show"})
        bad = await http.get("/livesocket", params={"topic": "t", "callback": "alert(1)"})
    assert script.headers["content-type"].startswith("text/javascript")
    assert "subscribe" in script.text
    assert embed.text.startswith(script.text)
    assert "show(" in embed.text
    assert bad.status_code == 400


async def test_the_live_socket_port_being_taken_is_a_clear_error():
    async with live_hub() as hub:
        port = int(hub.livesocket_url.rsplit(":", 1)[1])
        config = {
            "moksha.livesocket.backend": "websocket",
            "moksha.livesocket.websocket.port": port,
        }
        with pytest.raises(Exception, match=f"cannot listen on 127.0.0.1:{port}"):
            async with CentralMokshaHub(config, [], []):
                pass


async def test_overlapping_patterns_deliver_each_message_once():
    async with live_hub() as hub, websockets.connect(ws_url(hub)) as ws:
        await subscribe(ws, "p.*")
        await subscribe(ws, "p.#")
        await until_subscribed(hub, 2)
        await hub.publish("p.a", 1)
        await hub.publish("p.a.b", 2)  # only p.# matches
        await hub.publish("p.a", 3)
        frames = [await next_frame(ws) for _ in range(3)]
        with pytest.raises(TimeoutError):  # nothing more: no second copy of any
            await asyncio.wait_for(ws.recv(), 0.3)
    assert [(f["topic"], f["body"]) for f in frames] == [("p.a", 1), ("p.a.b", 2), ("p.a", 3)]


async def read_all(
    ws: Any, count: int, bodies: list[int] | None = None, progress: asyncio.Condition | None = None
) -> list[int]:
    """The bodies of the next ``count`` message frames, appended to ``bodies`` as they come."""
    bodies = [] if bodies is None else bodies
    async with asyncio.timeout(TIMEOUT * 2):
        while len(bodies) < count:
            bodies.append(json.loads(await ws.recv())["body"]["n"])
            if progress is not None:
                async with progress:
                    progress.notify_all()
    return bodies


def noise(size: int) -> str:
    # Incompressible, so that buffers fill with what a real client would be sent.
    return os.urandom(size // 2).hex()


async def test_a_client_that_stops_reading_does_not_stop_the_others():
    messages, readers, window = 400, 10, 4
    async with (
        live_hub(**{"moksha.livesocket.queue_size": 20}) as hub,
        stalled(ws_url(hub)) as slow,
    ):
        await subscribe(slow, "news.#")
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(
                    websockets.connect(ws_url(hub), compression=None, max_size=None)
                )
                for _ in range(readers)
            ]
            for ws in clients:
                await subscribe(ws, "news.#")
            await until_subscribed(hub, readers + 1)
            progress = asyncio.Condition()
            got: list[list[int]] = [[] for _ in clients]
            reading = [
                asyncio.create_task(read_all(ws, messages, bodies, progress))
                for ws, bodies in zip(clients, got, strict=True)
            ]
            for n in range(messages):  # ~8 MB to each: more than the socket buffers hold
                # The readers share this process with the hub: keep them within a few messages,
                # as clients that keep up are.
                async with progress, asyncio.timeout(TIMEOUT):
                    await progress.wait_for(lambda n=n: min(map(len, got)) >= n - window)
                await hub.publish("news.item", {"n": n, "text": noise(20_000)})
            await asyncio.gather(*reading)
        assert all(bodies == list(range(messages)) for bodies in got)  # every one, in order
        assert hub.livesocket.stats()["conflated"] > 0  # the stalled one lost the oldest


async def test_a_client_that_falls_behind_and_catches_up_gets_everything_in_order():
    messages = 200
    settings = {"moksha.livesocket.queue_size": messages}
    async with live_hub(**settings) as hub, stalled(ws_url(hub)) as ws:
        await subscribe(ws, "news.#")
        await until_subscribed(hub)
        for n in range(messages):
            await hub.publish("news.item", {"n": n, "text": noise(20_000)})
        client = next(iter(hub.livesocket.clients))
        await until(lambda: len(client.outbox) > 0)  # behind: frames wait on the server
        bodies = await read_all(ws, messages)
    assert bodies == list(range(messages))
    assert hub.livesocket.stats()["conflated"] == 0


async def test_under_another_asgi_websocket_server_frames_go_through_a_writer():
    pytest.importorskip("wsproto")
    import uvicorn

    from moksha.livesocket import LiveSocket, listen, livesocket_app

    async with CentralMokshaHub({"moksha.backends": "memory"}, [], []) as hub:
        live = LiveSocket(hub, hub.config)
        await live.start()
        sock = listen("127.0.0.1", 0)
        # wsproto offers no direct sink: each client gets an outbox and a writer task.
        config = uvicorn.Config(livesocket_app(live), ws="wsproto", lifespan="off")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            url = f"ws://127.0.0.1:{sock.getsockname()[1]}/livesocket/ws"
            async with websockets.connect(url) as ws:
                await subscribe(ws, "org.#")
                async with asyncio.timeout(TIMEOUT):
                    while live.stats()["subscriptions"] < 1:
                        await asyncio.sleep(0.01)
                for n in range(50):
                    await hub.publish("org.event", {"n": n})
                frames = [await next_frame(ws) for _ in range(50)]
                assert [client.sink for client in live.clients] == [None]
        finally:
            server.should_exit = True
            await serving
            await live.aclose()
    assert [frame["body"]["n"] for frame in frames] == list(range(50))


async def test_a_frame_for_a_client_that_began_closing_is_dropped_quietly():
    """Between a client's close frame and the connection's end, writes must not raise."""
    async with live_hub() as hub, websockets.connect(ws_url(hub)) as ws:
        await subscribe(ws, "t.#")
        await until_subscribed(hub)
        assert hub.livesocket is not None
        (client,) = hub.livesocket.clients
        sink: Any = client.sink
        assert sink is not None and sink.conn.extensions  # the compressed path encodes
        close = Frame(Opcode.CLOSE, Close(1000, "bye").serialize())
        sink.data_received(close.serialize(mask=True, extensions=[]))
        sink.write(WireFrame('{"topic": "t.a", "body": 1}'))  # raised InvalidState before
        client.offer(1, "t.a", WireFrame('{"topic": "t.a", "body": 2}'))
