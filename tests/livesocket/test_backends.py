"""The live socket works whatever the bus: a browser-side subscriber on every backend."""

from __future__ import annotations

import asyncio
import json
from uuid import uuid4

import pytest
import websockets

from moksha.hub import CentralMokshaHub
from support import BACKENDS, SPACE, TIMEOUT


@pytest.mark.parametrize("backend", sorted(BACKENDS))
async def test_a_websocket_client_receives_what_the_hub_publishes(backend):
    prefix = f"{SPACE}.ls.{uuid4().hex[:10]}"
    config = {
        **BACKENDS[backend](),
        "moksha.livesocket.backend": "websocket",
        "moksha.livesocket.websocket.port": 0,
    }
    async with CentralMokshaHub(config, [], []) as hub:
        url = hub.livesocket_url.replace("http://", "ws://") + "/livesocket/ws"
        async with websockets.connect(url) as ws:
            subscribe = {"topic": "__topic_subscribe__", "body": f"{prefix}.*"}
            await ws.send(json.dumps(subscribe))
            async with asyncio.timeout(TIMEOUT):
                while hub.livesocket.stats()["subscriptions"] < 1:
                    await asyncio.sleep(0.01)
            await hub.publish(f"{prefix}.deep.miss", "no")
            await hub.publish(f"{prefix}.hit", {"via": backend})
            frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert frame["topic"] == f"{prefix}.hit"
    assert frame["body"] == {"via": backend}
