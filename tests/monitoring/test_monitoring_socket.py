"""The original's monitoring socket, read as existing tools read it: a plain pyzmq SUB socket."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.asyncio
from monitoring_support import FAIL, INTERVAL, TOPIC, Clock, Thermometer, make_config

from moksha.errors import ConfigError
from moksha.hub import CentralMokshaHub
from moksha.monitoring import Monitor
from support import TIMEOUT


class Subscriber:
    """A plain ZeroMQ SUB socket, subscribed to everything the endpoint publishes."""

    def __init__(self, endpoint: str) -> None:
        self.context = zmq.asyncio.Context()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.subscribe(b"")
        self.socket.connect(endpoint)

    async def report(self) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT):
            frames = await self.socket.recv_multipart()
        assert len(frames) == 1, "the original publishes one frame of JSON"
        report: dict[str, Any] = json.loads(frames[0])
        return report

    async def report_where(self, wanted: Any) -> dict[str, Any]:
        """The first report for which ``wanted(report)`` holds (bounded by TIMEOUT)."""
        async with asyncio.timeout(TIMEOUT):
            while not wanted(report := await self.report()):
                pass
        return report

    def close(self) -> None:
        self.socket.close()
        self.context.term()


def thermometer(report: dict[str, Any]) -> dict[str, Any]:
    [consumer] = [c for c in report["consumers"] if c["name"] == "Thermometer"]
    return consumer


async def test_publishes_consumer_and_producer_stats_on_an_ipc_socket(tmp_path: Path) -> None:
    path = tmp_path / "monitor.sock"
    config = make_config(
        **{
            "moksha.monitoring.socket": f"ipc://{path}",
            "moksha.monitoring.socket.mode": "770",
            "moksha.monitoring.interval": INTERVAL,
        }
    )
    async with CentralMokshaHub(config, [Thermometer], [Clock]) as hub, Monitor(hub):
        assert stat.S_IMODE(path.stat().st_mode) == 0o770
        sub = Subscriber(f"ipc://{path}")
        try:
            await sub.report()  # subscribed: what follows is seen whole
            for celsius in (20, 21, FAIL):
                await hub.publish(TOPIC, celsius)
            seen = {"headcount_in": 0, "headcount_out": 0, "exceptions": 0}
            # Counts are those of the last interval; the three messages add up across reports.
            async with asyncio.timeout(TIMEOUT):
                while seen["headcount_out"] < 3:
                    consumer = thermometer(await sub.report())
                    for name in seen:
                        seen[name] += consumer[name]
        finally:
            sub.close()
    assert seen == {"headcount_in": 3, "headcount_out": 3, "exceptions": 1}
    assert consumer["topic"] == "org.example.sensor.*"
    assert consumer["module"] == Thermometer.__module__
    assert {"initialized", "backlog", "jsonify", "times"} <= consumer.keys()


async def test_each_report_resets_the_consumers_counters_as_the_original_did(
    tmp_path: Path,
) -> None:
    config = make_config(
        **{"moksha.monitoring.socket": "tcp://127.0.0.1:*", "moksha.monitoring.interval": INTERVAL}
    )
    async with CentralMokshaHub(config, [Thermometer], [Clock]) as hub, Monitor(hub) as monitor:
        assert monitor.socket is not None
        assert monitor.socket.endpoint.startswith("tcp://127.0.0.1:")
        sub = Subscriber(monitor.socket.endpoint)
        try:
            await sub.report()
            await hub.publish(TOPIC, 20)
            counted = await sub.report_where(lambda r: thermometer(r)["headcount_in"] == 1)
            quiet = await sub.report()
        finally:
            sub.close()
        assert [p["name"] for p in counted["producers"]] == ["Clock"]
        assert thermometer(quiet)["headcount_in"] == 0
        assert thermometer(quiet)["times"] == []
        # The Prometheus totals still count from the start.
        monitor.tally.sample()
        [tally] = monitor.tally.consumers()
        assert tally.received == 1


async def test_a_monitor_started_before_its_hub_reports_the_consumers_once_it_runs() -> None:
    config = make_config(
        **{"moksha.monitoring.socket": "tcp://127.0.0.1:*", "moksha.monitoring.interval": INTERVAL}
    )
    hub = CentralMokshaHub(config, [Thermometer], [])
    async with Monitor(hub) as monitor:  # what `moksha hub` does around hub.serve()
        assert monitor.socket is not None
        sub = Subscriber(monitor.socket.endpoint)
        try:
            assert (await sub.report())["consumers"] == []
            async with hub:
                report = await sub.report_where(lambda r: r["consumers"] != [])
        finally:
            sub.close()
    assert thermometer(report)["initialized"] is True


async def test_an_endpoint_that_cannot_be_bound_names_the_key(tmp_path: Path) -> None:
    config = make_config(**{"moksha.monitoring.socket": f"ipc://{tmp_path}/missing/dir/m.sock"})
    async with CentralMokshaHub(config, [], []) as hub:
        with pytest.raises(
            ConfigError, match=r"^moksha.monitoring.socket \(from code\): cannot bind"
        ):
            async with Monitor(hub):
                pass


async def test_a_mode_that_is_not_octal_names_the_key() -> None:
    config = make_config(
        **{"moksha.monitoring.socket": "tcp://127.0.0.1:*", "moksha.monitoring.socket.mode": "rw"}
    )
    async with CentralMokshaHub(config, [], []) as hub:
        with pytest.raises(ConfigError, match=r"moksha.monitoring.socket.mode .*not a file mode"):
            Monitor(hub)


def test_an_interval_that_is_not_seconds_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"moksha.monitoring.interval .*'soon'"):
        make_config(**{"moksha.monitoring.interval": "soon"})
