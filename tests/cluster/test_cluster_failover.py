"""Three nodes under a steady stream: clients spread over them, nodes killed and restarted.

Every client (WebSocket and SSE, as browsers use them) keeps reconnecting to the
next node with its last event id; whatever happens to the nodes, each must end
with every message once, in publish order.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aio_pika
from cluster_nodes import AMQP_URL, Cluster, Node, Roamer, cluster

from support import TIMEOUT

MESSAGES = 60


def roamers(nodes: list[Node], pattern: str) -> list[Roamer]:
    """A WebSocket and an SSE client starting on each node, each knowing every node."""
    urls = [node.url for node in nodes]
    return [
        Roamer(urls[i:] + urls[:i], pattern, kind)
        for i in range(len(urls))
        for kind in ("websocket", "sse")
    ]


async def started(clients: list[Roamer], nodes: list[Node]) -> list[asyncio.Task[None]]:
    tasks = [asyncio.create_task(c.run(MESSAGES)) for c in clients]
    await subscribed(clients, nodes)
    return tasks


async def subscribed(clients: list[Roamer], nodes: list[Node]) -> None:
    """Return once every client subscribed and the nodes count them (bounded)."""
    async with asyncio.timeout(TIMEOUT):
        await asyncio.gather(*(c.subscribed.wait() for c in clients))
        total = 0
        while total < len(clients):  # a bounded poll: the nodes count the subscriptions
            total = 0
            for node in nodes:
                total += (await asyncio.to_thread(node.status))["subscriptions"]
            await asyncio.sleep(0.05)


async def publish_plain(
    channel: aio_pika.abc.AbstractChannel, exchange: str, topic: str, n: int
) -> None:
    target = await channel.get_exchange(exchange)
    await target.publish(
        aio_pika.Message(
            str(n).encode(), content_type="application/json", message_id=f"{topic}-{n}"
        ),
        routing_key=topic,
    )


def check(clients: list[Roamer]) -> None:
    for client in clients:
        assert client.bodies == list(range(MESSAGES)), (client.kind, client.urls[0])
        assert all(client.verdicts), (client.kind, client.verdicts)


def test_three_nodes_a_node_killed_mid_stream_loses_nothing(tmp_path: Path) -> None:
    with cluster(tmp_path) as made:
        nodes = made.start(3)
        topic = "cluster.stream.x"
        clients = roamers(nodes, "cluster.stream.#")

        async def scenario() -> None:
            tasks = await started(clients, nodes)
            alive = list(nodes)
            connection = await aio_pika.connect(AMQP_URL)
            async with connection:
                channel = await connection.channel()
                for n in range(MESSAGES):
                    if n == MESSAGES // 3:
                        await asyncio.to_thread(nodes[0].kill)  # kill -9, mid-stream
                        alive.remove(nodes[0])
                    if n % 4 == 3:  # a plain AMQP client, no Moksha in it
                        await publish_plain(channel, made.settings["amqp_exchange"], topic, n)
                    else:  # each live node's HTTP publish in turn
                        await asyncio.to_thread(alive[n % len(alive)].publish, topic, n)
                    await asyncio.sleep(0.02)
            await asyncio.gather(*tasks)

        asyncio.run(scenario())

    check(clients)
    moved = [c for c in clients if c.urls[0] == nodes[0].url]
    assert all(c.connections >= 2 for c in moved)  # those on the killed node moved on
    assert all(c.verdicts == [True] for c in moved)


def restart(made: Cluster, node: Node) -> Node:
    port = int(node.url.rsplit(":", 1)[1])
    node.terminate()  # SIGTERM: drains its clients with 1012
    (again,) = made.start(1, port=port)
    return again


def test_a_rolling_restart_of_every_node_loses_nothing(tmp_path: Path) -> None:
    with cluster(tmp_path) as made:
        nodes = made.start(3)
        topic = "cluster.roll.x"
        clients = roamers(nodes, "cluster.roll.#")
        sent: list[int] = []
        total: list[int] = []  # known once the stream ends

        async def scenario() -> None:
            tasks = [
                asyncio.create_task(c.run(lambda: total[0] if total else None)) for c in clients
            ]
            await subscribed(clients, nodes)
            connection = await aio_pika.connect(AMQP_URL)
            async with connection:
                channel = await connection.channel()
                exchange = made.settings["amqp_exchange"]
                # A client resumes from the last id it saw: one that saw nothing yet has
                # none (docs/scaling.md, limits), so the restarts begin once all have one.
                await publish_plain(channel, exchange, topic, 0)
                sent.append(0)
                async with asyncio.timeout(TIMEOUT):
                    while not all(c.bodies for c in clients):
                        await asyncio.sleep(0.01)
                restarting = asyncio.create_task(restart_all(made, list(nodes)))
                # The stream runs through every restart, and a little after.
                for _ in range(2000):
                    if restarting.done() and len(sent) > 20:
                        break
                    await publish_plain(channel, exchange, topic, len(sent))
                    sent.append(len(sent))
                    await asyncio.sleep(0.03)
                await restarting
                for _ in range(10):
                    await publish_plain(channel, exchange, topic, len(sent))
                    sent.append(len(sent))
            total.append(len(sent))
            await asyncio.gather(*tasks)

        asyncio.run(scenario())

    for client in clients:
        assert client.bodies == sent, (client.kind, client.urls[0])
        assert all(client.verdicts), (client.kind, client.verdicts)
        assert client.connections >= 2  # every client was moved at least once


async def restart_all(made: Cluster, nodes: list[Node]) -> None:
    for node in nodes:  # one after the other
        await asyncio.to_thread(restart, made, node)
