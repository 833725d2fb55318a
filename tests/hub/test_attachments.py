"""The live socket, the cluster and the archive attach to a hub; the hub core imports none."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import httpx
import pytest
import websockets

from moksha.errors import ConfigError
from moksha.hub import CentralMokshaHub
from moksha.hub.attachment import ATTACHMENT_GROUP, installed_factories
from support import TIMEOUT


def listening(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return True
    except OSError:
        return False


HUB_CORE = [
    "moksha.hub",
    "moksha.hub.central",
    "moksha.hub.client",
    "moksha.hub.core",
    "moksha.hub.bridges",
    "moksha.hub.dead_letters",
    "moksha.hub.polling",
    "moksha.hub.attachment",
    "moksha.hub.runners",
    "moksha.hub.api",
]


def test_the_hub_core_imports_none_of_the_live_socket_the_cluster_and_the_archive() -> None:
    # A fresh interpreter: this one has imported everything already.
    imports = "; ".join(f"import {module}" for module in HUB_CORE)
    check = (
        "import sys; "
        "found = sorted(m for m in sys.modules "
        "if m.startswith(('moksha.livesocket', 'moksha.cluster', 'moksha.archive'))); "
        "print(found); assert not found"
    )
    run = subprocess.run(
        [sys.executable, "-c", f"{imports}; {check}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_moksha_declares_its_attachments_on_entry_points() -> None:
    # What a reinstalled Moksha offers the hub (pip install -e . after they were added).
    assert {"livesocket", "cluster", "archive"} <= set(installed_factories())


@pytest.mark.parametrize(
    ("key", "value", "name"),
    [
        ("moksha.livesocket.backend", "websocket", "livesocket"),
        ("moksha.cluster.url", "redis://127.0.0.1:6379/0", "cluster"),
        ("moksha.archive", "true", "archive"),
    ],
)
async def test_a_hub_asked_for_an_attachment_nothing_provides_refuses_to_start(
    memory_config: dict[str, str], key: str, value: str, name: str
) -> None:
    # What a venv not reinstalled since the entry points were added would see.
    hub = CentralMokshaHub({**memory_config, key: value}, [], [], attachments={})
    with pytest.raises(ConfigError) as caught:
        await hub.start()
    message = str(caught.value)
    assert key in message and f"the {name} attachment" in message
    assert ATTACHMENT_GROUP in message and "pip install -e ." in message


async def test_the_live_socket_attaches_and_its_properties_answer(
    memory_config: dict[str, str],
) -> None:
    config = {
        **memory_config,
        "moksha.livesocket.backend": "websocket",
        "moksha.livesocket.websocket.port": "0",
    }
    hub = CentralMokshaHub(config, [], [])
    assert hub.livesocket is None and hub.livesocket_url is None
    async with hub:
        assert set(hub.attachments) == {"livesocket"}
        assert hub.cluster is None and hub.coordinator is None
        assert hub.livesocket is not None and hub.livesocket_url is not None
        async with httpx.AsyncClient(base_url=hub.livesocket_url, timeout=TIMEOUT) as http:
            status = await http.get("/livesocket/status")
        assert status.json()["clients"] == 0
    # Closed, its numbers still read (as tests and monitoring do after a run).
    assert hub.livesocket is not None and hub.livesocket.stats()["clients"] == 0
    assert not listening(hub.livesocket_url)


async def test_without_the_live_socket_configured_nothing_attaches(
    memory_config: dict[str, str],
) -> None:
    async with CentralMokshaHub(memory_config, [], []) as hub:
        assert hub.attachments == {} and hub.livesocket_url is None


async def test_a_stopping_hub_drains_its_live_socket_clients_with_1012(
    memory_config: dict[str, str],
) -> None:
    config = {
        **memory_config,
        "moksha.livesocket.backend": "websocket",
        "moksha.livesocket.websocket.port": "0",
    }
    hub = CentralMokshaHub(config, [], [])
    await hub.start()
    assert hub.livesocket_url is not None
    url = hub.livesocket_url.replace("http://", "ws://") + "/livesocket/ws"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"topic": "__topic_subscribe__", "body": "a.#"}))
        async with asyncio.timeout(TIMEOUT):
            while hub.livesocket.stats()["subscriptions"] < 1:
                await asyncio.sleep(0.01)
        await hub.publish("a.b", 1)
        first = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        stopping = asyncio.create_task(hub.aclose())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        await stopping
    assert first["body"] == 1
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert hub.livesocket.draining and not listening(hub.livesocket_url)
