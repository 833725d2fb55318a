"""A plugin that breaks its own statistics cannot break monitoring for the others.

``/metrics``, ``/ready``, the hub status and the monitoring socket keep
reporting every other consumer; ``/ready`` names the broken one; the log says
so once, not every second.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
import zmq
import zmq.asyncio
from monitoring_support import INTERVAL, TOPIC, Thermometer, make_config, serving
from starlette.applications import Starlette

from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer
from moksha.monitoring import Monitor
from support import TIMEOUT, until


class KeepsItsOwnStats(Consumer):
    """Assigns ``self.stats``, shadowing the method monitoring reads."""

    topic = "org.example.sensor.*"

    def __init__(self, hub: Any) -> None:
        super().__init__(hub)
        self.stats = {"seen": 0}  # type: ignore[assignment,method-assign]

    def consume(self, message: Any) -> None:
        self.stats["seen"] += 1  # type: ignore[index]


class ForgetsSuperInit(Consumer):
    """Never calls ``super().__init__(hub)``: the base class initialised itself."""

    topic = "org.example.sensor.*"

    def __init__(self, hub: Any) -> None:
        self.label = "forgetful"

    def consume(self, message: Any) -> None:
        pass


def series(text: str, consumer: str) -> dict[str, float]:
    """The consumer's sample values in a Prometheus exposition, by metric name."""
    found = {}
    for line in text.splitlines():
        if line.startswith("moksha_consumer_") and f'consumer="{consumer}"' in line:
            name, value = line.split("{", 1)[0], line.rsplit(" ", 1)[1]
            found[name] = float(value)
    return found


async def test_metrics_and_ready_report_the_others_and_name_the_broken_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumers = [Thermometer, KeepsItsOwnStats, ForgetsSuperInit]
    async with (
        CentralMokshaHub(make_config(), consumers, []) as hub,
        Monitor(hub) as monitor,
        serving(Starlette(routes=monitor.routes(status=True))) as url,
        httpx.AsyncClient(base_url=url, trust_env=False, timeout=TIMEOUT) as http,
    ):
        for n in range(3):
            await hub.publish(TOPIC, n)
        await until(lambda: hub.consumers[0].stats()["headcount_out"] == 3)
        await until(lambda: hub.consumers[2].stats()["headcount_out"] == 3)
        metrics = [await http.get("/metrics") for _ in range(3)]
        ready = await http.get("/ready")
        status = await http.get("/_moksha/hub/status")  # what `moksha monitor --hub` reads
    assert [response.status_code for response in metrics] == [200, 200, 200]
    assert status.status_code == 200
    assert [c["name"] for c in status.json()["consumers"]] == ["Thermometer", "ForgetsSuperInit"]
    text = metrics[-1].text
    assert series(text, "Thermometer")["moksha_consumer_messages_consumed_total"] == 3
    assert series(text, "ForgetsSuperInit")["moksha_consumer_messages_consumed_total"] == 3
    assert series(text, "KeepsItsOwnStats") == {}
    assert "moksha_hub_ready 0.0" in text
    assert ready.status_code == 503
    [reason] = ready.json()["reasons"]
    assert reason.startswith("consumer KeepsItsOwnStats cannot report its statistics")
    assert ready.json()["consumers"] == 3
    logged = [r for r in caplog.records if "KeepsItsOwnStats" in r.getMessage()]
    assert len(logged) == 1, "one line for the broken consumer, not one per read"
    assert logged[0].levelno == logging.ERROR
    assert "self.stats" in logged[0].getMessage()


async def test_the_monitoring_socket_reports_the_others() -> None:
    config = make_config(
        **{"moksha.monitoring.socket": "tcp://127.0.0.1:*", "moksha.monitoring.interval": INTERVAL}
    )

    class BrokenReport(Thermometer):
        def __json__(self) -> dict[str, Any]:
            raise RuntimeError("no report today")

    context = zmq.asyncio.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.subscribe(b"")
    try:
        async with (
            CentralMokshaHub(config, [Thermometer, BrokenReport], []) as hub,
            Monitor(hub) as monitor,
        ):
            assert monitor.socket is not None
            sub.connect(monitor.socket.endpoint)
            await hub.publish(TOPIC, 1)
            async with asyncio.timeout(TIMEOUT):
                while True:
                    report = json.loads(await sub.recv())
                    if report["consumers"] and report["consumers"][0]["headcount_in"]:
                        break
    finally:
        sub.close()
        context.term()
    assert [c["name"] for c in report["consumers"]] == ["Thermometer"]
    [(name, error)] = report["unreadable"].items()
    assert name.startswith("consumer ") and name.endswith("BrokenReport")
    assert "RuntimeError: no report today" in error
