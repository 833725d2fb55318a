"""Several ``moksha start`` processes as one cluster: RabbitMQ between them, Redis shared.

Each test starts real nodes (separate processes on different ports of this
machine; separate hosts, network namespaces, are not tried here) with an AMQP
exchange and a Redis key prefix of their own.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from cluster_nodes import AMQP_URL, POSTGRES_URL, Cluster, Listener, Node, cluster

from support import TIMEOUT, require_service

COUNTER = "moksha.demo.counter"
RECORDER = "livesocket:history"


def topic_base() -> str:
    return f"cluster.{secrets.token_hex(4)}"


async def listening(listener: Listener, count: int) -> asyncio.Task[list[dict[str, Any]]]:
    """Start ``listener``; return its task once its node counts the subscription (bounded)."""
    before = (await asyncio.to_thread(listener.node.status))["subscriptions"]
    task = asyncio.create_task(listener.run(count))
    async with asyncio.timeout(TIMEOUT):
        while (await asyncio.to_thread(listener.node.status))["subscriptions"] <= before:
            await asyncio.sleep(0.05)
    return task


def test_a_client_on_any_node_gets_every_message_once_in_order(tmp_path: Path) -> None:
    with cluster(tmp_path) as made:
        a, b = made.start(2)
        base = topic_base()
        exchange = made.settings["amqp_exchange"]

        async def scenario() -> tuple[list[Any], list[Any]]:
            on_a, on_b = Listener(a, f"{base}.#"), Listener(b, f"{base}.#")
            got_a, got_b = await listening(on_a, 30), await listening(on_b, 30)
            for n in range(20):  # from both nodes' HTTP publish, alternately
                await asyncio.to_thread((a if n % 2 else b).publish, f"{base}.n", n)
            # ... and from a plain AMQP client, no Moksha in it.
            connection = await aio_pika.connect(AMQP_URL)
            async with connection:
                channel = await connection.channel()
                target = await channel.get_exchange(exchange)
                for n in range(20, 30):
                    await target.publish(
                        aio_pika.Message(str(n).encode(), content_type="application/json"),
                        routing_key=f"{base}.n",
                    )
            return await got_a, await got_b

        frames_a, frames_b = asyncio.run(scenario())

    assert [f["body"] for f in frames_a] == list(range(30))
    assert [f["body"] for f in frames_b] == list(range(30))
    # One id per message for the whole cluster, growing in publish order.
    assert [f["id"] for f in frames_a] == [f["id"] for f in frames_b]
    offsets = [int(f["id"].split("-")[1]) for f in frames_a]
    assert offsets == sorted(set(offsets))


@pytest.mark.parametrize("store", ["redis", "postgresql"])
def test_a_client_that_loses_its_node_recovers_the_gap_on_another(
    tmp_path: Path, store: str
) -> None:
    settings = {"moksha.livesocket.history.size": "5"}
    if store == "postgresql":
        require_service("PostgreSQL", 5432)
        settings["moksha.cluster.url"] = POSTGRES_URL
    with cluster(tmp_path, **settings) as made:
        a, b = made.start(2)
        base = topic_base()

        async def before_kill() -> list[dict[str, Any]]:
            listener = Listener(a, f"{base}.#")
            task = await listening(listener, 3)
            for n in range(3):
                await asyncio.to_thread(b.publish, f"{base}.x", n)
            return await task

        seen = asyncio.run(before_kill())
        a.kill()  # kill -9: no goodbye
        for n in range(3, 7):  # the gap: published while the client has no node
            b.publish(f"{base}.x", n)

        resumed = Listener(b, f"{base}.#", since=seen[-1]["id"])

        async def after() -> list[dict[str, Any]]:
            task = await listening(resumed, 5)
            await asyncio.to_thread(b.publish, f"{base}.x", 7)  # live again
            return await task

        frames = asyncio.run(after())
        assert [f["body"] for f in frames] == [3, 4, 5, 6, 7]  # no gap, no duplicate
        assert resumed.recovered is True

        # A client away longer than the history (5 per topic) is told to reload.
        async def more() -> None:
            # Received live on B, so B has stored them (a publish returns before that).
            watcher = Listener(b, f"{base}.#")
            task = await listening(watcher, 8)
            for n in range(8, 16):
                await asyncio.to_thread(b.publish, f"{base}.x", n)
            await task

        asyncio.run(more())
        stale = Listener(b, f"{base}.#", since=seen[-1]["id"])
        asyncio.run(asyncio.wait_for(stale.run(5), TIMEOUT))
        assert stale.recovered is False
        assert [f["body"] for f in stale.frames] == [11, 12, 13, 14, 15]


def leaders(node: Node) -> dict[str, str]:
    return dict(node.status()["cluster"]["leaders"])


def test_a_polling_producer_runs_on_one_node_and_another_takes_over(tmp_path: Path) -> None:
    with cluster(tmp_path, **{"moksha.dashboard.demo": "true"}) as made:
        a, b = made.start(2)
        lock = "producer:moksha.widgets.demo.Counter"
        status = a.status()["cluster"]
        assert len(status["nodes"]) == 2
        holder = status["leaders"][lock]
        by_pid = {str(n.process.pid): n for n in (a, b)}
        leader = next(node for pid, node in by_pid.items() if f"-{pid}-" in holder)
        other = b if leader is a else a

        ticks = Listener(other, COUNTER)
        asyncio.run(ticks.run(3, timeout=TIMEOUT))
        counts = [f["body"]["count"] for f in ticks.frames]
        # Two nodes polling would give each count twice.
        assert counts == list(range(counts[0], counts[0] + 3))

        leader.kill()
        began = time.monotonic()
        deadline = began + 3 * 1.5 + TIMEOUT
        mine = f"-{other.process.pid}-"
        while mine not in leaders(other).get(lock, "") and time.monotonic() < deadline:
            time.sleep(0.1)  # a bounded poll of the survivor's status
        took = time.monotonic() - began
        assert mine in leaders(other)[lock]
        assert took < 2 * 1.5 + 1  # the TTL (1.5 s) plus a renewal interval, with slack
        after = Listener(other, COUNTER)
        asyncio.run(after.run(2, timeout=TIMEOUT))
        assert len(other.status()["cluster"]["nodes"]) == 1


def test_sigterm_closes_clients_with_service_restart(tmp_path: Path) -> None:
    with cluster(tmp_path) as made:
        (a,) = made.start(1)
        base = topic_base()
        listener = Listener(a, f"{base}.#")

        async def scenario() -> None:
            task = await listening(listener, 1_000)
            await asyncio.to_thread(a.terminate)
            await task  # ends when the node closes the connection

        asyncio.run(scenario())
        assert listener.close_code == 1012


def exchange_bindings(exchange: str) -> list[str]:
    """The routing keys bound to ``exchange``, as RabbitMQ lists them."""
    listed = subprocess.run(
        ["rabbitmqctl", "list_bindings", "-q", "--no-table-headers", "source_name", "routing_key"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return sorted(
        key
        for source, _, key in (line.partition("\t") for line in listed.splitlines())
        if source == exchange
    )


def recorder_of(made: Cluster, among: list[Node]) -> Node | None:
    """The node leading the history recorder, as the first of ``among`` sees it."""
    holder = among[0].status()["cluster"]["leaders"].get(RECORDER)
    return next((n for n in among if holder and f"-{n.process.pid}-" in holder), None)


def test_nodes_bind_only_what_their_clients_ask_for(tmp_path: Path) -> None:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is needed to read RabbitMQ's bindings")
    with cluster(tmp_path, **{"moksha.livesocket.bind_on_demand": "true"}) as made:
        a, b = made.start(2)
        exchange = made.settings["amqp_exchange"]
        base = topic_base()
        recorder = recorder_of(made, [a, b])
        assert recorder is not None
        other = b if recorder is a else a
        # No clients: only the recorder's # is bound (one node's, not each node's).
        assert exchange_bindings(exchange) == ["#"]
        assert other.status()["bound"] == []

        async def scenario() -> list[dict[str, Any]]:
            wanted = Listener(other, f"{base}.wanted.#")
            task = await listening(wanted, 2)
            assert other.status()["bound"] == [f"{base}.wanted.#"]
            assert exchange_bindings(exchange) == ["#", f"{base}.wanted.#"]
            for topic in ("other.x", "wanted.y", "unwanted.z", "wanted.q"):
                await asyncio.to_thread(recorder.publish, f"{base}.{topic}", topic)
            return await task

        frames = asyncio.run(scenario())
        assert [f["body"] for f in frames] == ["wanted.y", "wanted.q"]

        # The last client left: unbound (a bounded poll; the node unbinds once it noticed).
        deadline = time.monotonic() + TIMEOUT
        while other.status()["bound"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert other.status()["bound"] == []
        assert exchange_bindings(exchange) == ["#"]


def test_with_bind_on_demand_the_recorder_keeps_what_no_node_bound(tmp_path: Path) -> None:
    settings = {"moksha.livesocket.bind_on_demand": "true"}
    with cluster(tmp_path, **settings) as made:
        a, b = made.start(2)
        recorder = recorder_of(made, [a, b])
        assert recorder is not None
        other = b if recorder is a else a
        base = topic_base()

        async def first() -> list[dict[str, Any]]:
            listener = Listener(other, f"{base}.#")
            task = await listening(listener, 2)
            for n in range(2):
                await asyncio.to_thread(recorder.publish, f"{base}.x", n)
            return await task

        seen = asyncio.run(first())
        other.kill()  # the client's node dies; no node binds its pattern now...
        for n in range(2, 5):
            recorder.publish(f"{base}.x", n)  # ... but the recorder records it
        resumed = Listener(recorder, f"{base}.#", since=seen[-1]["id"])
        asyncio.run(resumed.run(3))
        assert [f["body"] for f in resumed.frames] == [2, 3, 4]
        assert resumed.recovered is True

        # The recorder dies too: what is published before another node records is lost
        # to the history, and a client away since before then is told so.
        (c,) = made.start(1)
        mine = f"-{c.process.pid}-"
        recorder.kill()
        c.publish(f"{base}.x", 5)  # no node records this one (c has not taken over yet)
        assert mine not in leaders(c).get(RECORDER, "")
        deadline = time.monotonic() + TIMEOUT + 3 * 1.5
        while mine not in leaders(c).get(RECORDER, "") and time.monotonic() < deadline:
            time.sleep(0.1)  # a bounded poll: the new node takes the recorder over
        late = Listener(c, f"{base}.#", since=resumed.frames[-1]["id"])
        asyncio.run(late.run(0))  # only the verdict
        assert late.recovered is False
