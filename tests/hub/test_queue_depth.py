"""The depth of each consumer's broker queue: on the hub status, in /metrics, in /ready.

A real hub on the local RabbitMQ runs a consumer that holds one message at a
time (prefetch 1) and waits for the test, so the rest wait in its durable queue.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
from starlette.applications import Starlette

from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer
from moksha.hub.backends.amqp_registry import Registry
from moksha.hub.central import group_name
from moksha.monitoring import Monitor
from moksha.widgets.status import hub_status
from support import RUN, TIMEOUT, amqp, until

TOPIC = f"test.depth.{RUN}"
LIMIT = 5


class Sluggish(Consumer):
    """Waits in ``consume`` until the test opens the gate."""

    topic = TOPIC
    gate = threading.Event()

    def consume(self, message: Any) -> None:
        self.gate.wait(TIMEOUT)


async def test_a_growing_queue_shows_on_the_dashboard_metrics_and_ready() -> None:
    config = {
        **amqp(),
        "amqp_prefetch": 1,
        "moksha.queue_depth_interval": 0.05,
        "moksha.queue_depth_limit": LIMIT,
        "moksha.shutdown_timeout": 0.5,
    }
    Sluggish.gate.clear()
    try:
        async with (
            CentralMokshaHub(config, [Sluggish], []) as hub,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=Starlette(routes=Monitor(hub).routes())),
                base_url="http://testserver",
            ) as http,
        ):
            calm = await http.get("/ready")
            for n in range(20):
                await hub.publish(TOPIC, n)
            consumer = hub.consumers[0]
            await until(lambda: (consumer.queue_depth or 0) > LIMIT)
            ready = await http.get("/ready")
            metrics = await http.get("/metrics")
            status = hub_status(hub)
            Sluggish.gate.set()
            await until(lambda: consumer.queue_depth == 0, timeout=3 * TIMEOUT)
            drained = await http.get("/ready")
    finally:
        Sluggish.gate.set()
        async with Registry.open(config["amqp_broker"], config["amqp_queue_prefix"]) as registry:
            await registry.delete(f"{config['amqp_queue_prefix']}.{group_name(Sluggish)}")

    assert calm.json()["status"] == "ready"
    assert ready.status_code == 200, "a long queue degrades the hub; it does not make it unready"
    assert ready.json()["status"] == "degraded"
    [warning] = ready.json()["warnings"]
    assert warning.startswith("consumer Sluggish has ")
    assert "moksha.queue_depth_limit is 5" in warning
    depth_line = next(
        line
        for line in metrics.text.splitlines()
        if line.startswith("moksha_consumer_queue_depth{") and 'consumer="Sluggish"' in line
    )
    assert float(depth_line.rsplit(" ", 1)[1]) > LIMIT
    [row] = status["consumers"]
    assert row["name"] == "Sluggish" and row["queue_depth"] > LIMIT
    assert drained.json()["status"] == "ready"
