"""Publishing over HTTP on one kept-alive connection, as ``moksha send`` and webhooks do.

Speed is measured in ``benchmarks/bench_http_publish.py``; these tests check
what makes it possible (no Nagle delay on the hub's connections) and that
every publish on one connection arrives, in order.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx

from moksha.hub import CentralMokshaHub
from moksha.livesocket import listen
from support import TIMEOUT

PUBLISHES = 200


async def test_the_hubs_connections_send_small_writes_at_once() -> None:
    # Without TCP_NODELAY, a response written in two writes waits ~40 ms for an ACK.
    accepted: asyncio.Queue[Any] = asyncio.Queue()

    class Accepting(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.put_nowait(transport.get_extra_info("socket"))

    sock = listen("127.0.0.1", 0)
    server = await asyncio.get_running_loop().create_server(Accepting, sock=sock)
    async with server:
        port = sock.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        served = await asyncio.wait_for(accepted.get(), TIMEOUT)
        assert served.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        writer.close()
        await writer.wait_closed()


async def test_many_publishes_on_one_kept_alive_connection_all_arrive_in_order() -> None:
    config = {
        "moksha.backends": "memory",
        "moksha.livesocket.backend": "websocket",
        "moksha.livesocket.websocket.port": 0,
    }
    received: list[Any] = []
    all_in = asyncio.Event()

    async def receive(message: Any) -> None:
        received.append(message.body["n"])
        if len(received) == PUBLISHES:
            all_in.set()

    async with CentralMokshaHub(config, [], []) as hub:
        await hub.asubscribe("cli.kept.#", receive)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=hub.livesocket_url, limits=limits) as http:
            peers = set()
            for n in range(PUBLISHES):
                response = await http.post(
                    "/livesocket/publish", json={"topic": "cli.kept.n", "body": {"n": n}}
                )
                assert response.status_code == 200, response.text
                stream = response.extensions["network_stream"]
                peers.add(stream.get_extra_info("client_addr"))
            await asyncio.wait_for(all_in.wait(), TIMEOUT)
    assert len(peers) == 1  # one connection, kept alive throughout
    assert received == list(range(PUBLISHES))
