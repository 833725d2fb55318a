"""``moksha monitor``, run in-process against a running hub, as a user runs it in a shell.

The hub runs on its own loop thread with ``moksha start``'s web app (so the
status endpoint is the real one), or with a monitoring socket; the command
runs through ``moksha.cli.main`` and its output is read from stdout.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from monitoring_support import FAIL, INTERVAL, PATTERN, TOPIC, Clock, Thermometer, make_config
from rich.console import Console

from moksha.cli import main
from moksha.config import Config
from moksha.hub import CentralMokshaHub
from moksha.hub.loop_thread import LoopThread
from moksha.livesocket import LiveSocket, LiveSocketServer, listen
from moksha.monitoring import Monitor
from moksha.monitoring.view import ConsumerView, Snapshot, render, with_rates
from moksha.web import create_app
from support import TIMEOUT


@dataclass
class RunningHub:
    """A hub serving on a loop thread: the URL of its web app, its monitoring socket."""

    hub: CentralMokshaHub
    loop: LoopThread
    url: str | None = None
    socket: str | None = None

    def publish(self, *bodies: Any) -> None:
        async def publish() -> None:
            for body in bodies:
                await self.hub.publish(TOPIC, body)

        self.loop.run(publish(), TIMEOUT)

    def wait_consumed(self, count: int) -> None:
        async def consumed() -> None:
            [consumer] = self.hub.consumers
            while consumer.stats()["headcount_out"] < count:
                await asyncio.sleep(0.01)

        self.loop.run(asyncio.wait_for(consumed(), TIMEOUT), TIMEOUT + 1)


@pytest.fixture
def running_hub() -> Iterator[Any]:
    """Start a hub with ``moksha start``'s web app, or a monitoring socket, on a loop thread."""
    loop = LoopThread("monitor-test")
    stops: list[Any] = []

    def start(config: Config, *, web: bool = False) -> RunningHub:
        async def up() -> RunningHub:
            hub = CentralMokshaHub(config, [Thermometer], [Clock])
            await hub.start()
            running = RunningHub(hub, loop)
            monitor = Monitor(hub)
            await monitor.start()
            running.socket = monitor.socket.endpoint if monitor.socket else None
            stops.extend([hub.aclose, monitor.aclose])
            if web:
                live = LiveSocket(hub, config)
                await live.start()
                app = create_app(hub, config, live=live)
                server = LiveSocketServer(app, listen("127.0.0.1", 0), 65536)
                serving = asyncio.create_task(server.serve())
                running.url = server.url

                async def stop_web() -> None:
                    server.stop()
                    await asyncio.wait_for(serving, TIMEOUT)
                    await app.aclose()
                    await live.aclose()

                stops.append(stop_web)
            return running

        return loop.run(up(), TIMEOUT)

    yield start

    async def down() -> None:
        for stop in reversed(stops):
            await stop()

    try:
        loop.run(down(), TIMEOUT * 2)
    finally:
        loop.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_once_shows_a_running_hubs_consumers_rates_and_errors(
    running_hub: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = running_hub(make_config(**{"moksha.dashboard.demo": False}), web=True)
    hub.publish(20, 21, FAIL)
    hub.wait_consumed(3)

    code = main(["monitor", "--hub", hub.url, "--once", "--interval", str(INTERVAL)])

    out = capsys.readouterr().out
    assert code == 0, out
    [row] = [line for line in out.splitlines() if "Thermometer" in line]
    assert PATTERN in row
    cells = row.replace("│", " ").split()
    # consumer, topics, received, consumed, in/s, out/s, backlog, errors, mean ms
    assert cells[2:4] == ["3", "3"]
    assert cells[4:6] == ["0.0", "0.0"], "nothing arrived between the two reads"
    assert cells[6:8] == ["0", "1"]
    assert "Clock" in out
    assert "memory connected" in out
    assert "since the hub started" in out


def test_once_reads_the_monitoring_socket(
    running_hub: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"ipc://{tmp_path}/monitor.sock"
    settings = {"moksha.monitoring.socket": endpoint, "moksha.monitoring.interval": INTERVAL}
    running_hub(make_config(**settings))
    (tmp_path / "development.ini").write_text(
        f"[app:main]\nmoksha.monitoring.interval = {INTERVAL}\n"
    )

    code = main(["monitor", "--socket", endpoint, "--once"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "Thermometer" in out
    assert "in the last interval" in out
    assert "Clock" in out


def test_a_hub_url_where_nothing_answers(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["monitor", "--hub", url, "--once"]) == 1
    assert f"no Moksha hub answers at {url}" in capsys.readouterr().err


def test_a_socket_where_no_hub_publishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["monitor", "--socket", f"ipc://{tmp_path}/none.sock", "--once"]) == 1
    assert f"no monitoring socket at {tmp_path}/none.sock" in capsys.readouterr().err


def test_a_hub_port_without_the_status(
    running_hub: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = {"moksha.livesocket.backend": "websocket", "moksha.livesocket.websocket.port": 0}
    hub = running_hub(make_config(**settings))
    url = hub.hub.livesocket_url
    assert main(["monitor", "--hub", url, "--once"]) == 1
    err = capsys.readouterr().err
    assert "serves no hub status (404 on /_moksha/hub/status)" in err
    assert "--socket" in err


def test_hub_and_socket_together_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["monitor", "--hub", "http://127.0.0.1:1", "--socket", "ipc:///tmp/x", "--once"]
    assert main(args) == 2
    assert "--hub or --socket, not both" in capsys.readouterr().err


def consumer(received: int, **more: Any) -> ConsumerView:
    return ConsumerView("C", "m", ("a.*",), received, received, 0, 0, None, **more)


def test_rates_count_a_reset_total_as_new() -> None:
    before = Snapshot("http://hub", 10.0, (consumer(100),), ())
    after = Snapshot("http://hub", 12.0, (consumer(30),), ())  # the socket reset it, then 30 came
    [rated] = with_rates(after, before).consumers
    assert rated.received_rate == 15.0


def test_the_view_marks_errors_and_a_disconnected_backend() -> None:
    snapshot = Snapshot(
        "http://hub",
        0.0,
        (ConsumerView("Thermometer", "m", ("a.*",), 5, 5, 2, 3, 1.5),),
        (),
        hub_id="host:1:abc",
        state="running",
        backends=(("amqp", False),),
        livesocket={"clients": 2, "websocket": 1, "sse": 1, "subscriptions": 4},
    )
    console = Console(record=True, width=160)
    console.print(render(snapshot))
    text = console.export_text()
    assert "amqp DISCONNECTED" in text
    assert "Live socket: 2 clients (1 WebSocket, 1 SSE), 4 subscriptions" in text
    assert "No producers." in text
