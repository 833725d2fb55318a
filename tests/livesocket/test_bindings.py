"""Bind on demand: the live socket's broker bindings follow its clients' patterns."""

from __future__ import annotations

import asyncio
import secrets

from moksha.hub import CentralMokshaHub
from moksha.livesocket import LiveSocket, Session
from support import TIMEOUT, amqp


async def test_patterns_are_bound_while_clients_want_them_and_only_then() -> None:
    config = {**amqp(), "amqp_exchange": f"i11test.{secrets.token_hex(4)}"}
    config["moksha.livesocket.bind_on_demand"] = "true"
    async with CentralMokshaHub(config, [], []) as hub:
        live = LiveSocket(hub, hub.config)
        await live.start()
        try:
            assert live.stats()["bound"] == []
            one = live.connect(Session(live.policy))
            two = live.connect(Session(live.policy))
            await live.subscribe(one, "org.a.#")
            await live.subscribe(two, "org.a.#")
            await live.subscribe(two, "org.b")
            assert live.stats()["bound"] == ["org.a.#", "org.b"]

            await hub.publish("org.b", "for two")  # bound before subscribe returned
            async with asyncio.timeout(TIMEOUT):
                while not len(two.outbox):
                    await asyncio.sleep(0.01)
            [frame] = two.outbox.take()
            assert frame.startswith('{"topic":"org.b","body":"for two",')

            live.unsubscribe(two, "org.b")
            live.unsubscribe(one, "org.a.#")  # org.a.# is still two's
            # A pattern left and wanted again at once stays bound (no lost race).
            live.unsubscribe(two, "org.a.#")
            await live.subscribe(two, "org.a.#")
            async with asyncio.timeout(TIMEOUT):
                while live.stats()["bound"] != ["org.a.#"]:
                    await asyncio.sleep(0.01)
            live.unsubscribe(two, "org.a.#")  # the last one
            async with asyncio.timeout(TIMEOUT):
                while live.stats()["bound"]:
                    await asyncio.sleep(0.01)
        finally:
            await live.aclose()


async def test_on_a_backend_that_cannot_rebind_the_live_socket_binds_everything() -> None:
    config = {"moksha.backends": "memory", "moksha.livesocket.bind_on_demand": "true"}
    async with CentralMokshaHub(config, [], []) as hub:
        live = LiveSocket(hub, hub.config)
        await live.start()
        try:
            assert live.stats()["bound"] == ["#"]
            client = live.connect(Session(live.policy))
            await live.subscribe(client, "org.#")
            await hub.publish("org.x", 1)
            async with asyncio.timeout(TIMEOUT):
                while not len(client.outbox):
                    await asyncio.sleep(0.01)
        finally:
            await live.aclose()
