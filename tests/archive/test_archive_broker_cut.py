"""Recording on RabbitMQ while the hub's connection is cut: nothing acknowledged is missing."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import aio_pika
from sqlalchemy import func, select

from moksha.archive import ArchiveStore
from moksha.archive.models import MESSAGES
from moksha.archive.recorder import ArchiveRecorder
from moksha.hub import CentralMokshaHub
from moksha.hub.hub import group_name
from support import RUN_QUEUE_PREFIX, TIMEOUT, require_service, until
from tcp_proxy import TcpProxy

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


async def test_cut_connections_lose_nothing_from_the_archive(
    archive_config: dict[str, Any],
) -> None:
    require_service("RabbitMQ", 5672)
    prefix = f"i14cut.{uuid4().hex[:10]}"
    total = 200
    store = ArchiveStore(archive_config["moksha.archive.url"])

    def archived() -> int:
        with store.engine.connect() as connection:
            query = select(func.count()).where(MESSAGES.c.topic == f"{prefix}.n")
            return int(connection.execute(query).scalar_one())

    async with TcpProxy(5672) as proxy:
        config = {
            **archive_config,
            "moksha.backends": "amqp",
            "amqp_broker": f"amqp://guest:guest@127.0.0.1:{proxy.port}/",
            "amqp_queue_prefix": RUN_QUEUE_PREFIX,
            "amqp_prefetch": 50,
            "moksha.archive.topics": f"{prefix}.#",
            "moksha.archive.batch_size": 20,
            "moksha.blocking_mode": True,
            "moksha.reconnect_delay": 0.1,
            "moksha.reconnect_max_delay": 1.0,
            "moksha.publish_timeout": 60.0,
        }
        sent: list[str] = []
        try:
            async with CentralMokshaHub(config, [], []) as hub:
                for n in range(total):
                    if n in (70, 140):
                        await proxy.cut()
                    sent.append((await hub.publish(f"{prefix}.n", n)).id)
                await until(lambda: archived() >= total, timeout=6 * TIMEOUT)
        finally:
            async with await aio_pika.connect(AMQP) as connection:
                channel = await connection.channel()
                await channel.queue_delete(f"{RUN_QUEUE_PREFIX}.{group_name(ArchiveRecorder)}")
    with store.engine.connect() as connection:
        ids = connection.execute(
            select(MESSAGES.c.msg_id).where(MESSAGES.c.topic == f"{prefix}.n")
        ).scalars()
        assert sorted(ids) == sorted(sent)  # each once: redeliveries were not stored twice
    store.close()
    assert proxy.connections_made >= 3
