"""``moksha start``, as a user runs it: one process, one port, the dashboard with live demo data."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from moksha.cli import main
from moksha.web.resources import STATIC_PREFIX
from support import TIMEOUT

START_TIMEOUT = 20.0  # a cold interpreter importing everything, on a slow CI machine
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def start(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``moksha start --port P`` in an empty directory, answering HTTP; yields (process, URL).

    The directory's development.ini asks for the hub's own live-socket port, which
    ``moksha start`` must not open: everything is on P.
    """
    port, hub_port = free_port(), free_port()
    (tmp_path / "development.ini").write_text(
        "[app:main]\n"
        "moksha.livesocket.backend = websocket\n"
        f"moksha.livesocket.websocket.port = {hub_port}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOKSHA_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "moksha", "start", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        answered = False
        while not answered and process.poll() is None and time.monotonic() < deadline:
            try:
                answered = httpx.get(f"{url}/", timeout=1).status_code == 200
            except httpx.TransportError:
                time.sleep(0.05)
        if not answered:
            process.kill()
            pytest.fail(
                f"moksha start did not answer within {START_TIMEOUT}s: {process.communicate()}"
            )
        assert not listening(hub_port), "moksha start opened the hub's own live-socket port"
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def stop(process: subprocess.Popen[str], sig: signal.Signals) -> str:
    """Send ``sig``; return stderr once the process ended (at most STOP_TIMEOUT seconds)."""
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=STOP_TIMEOUT)
    return stderr


async def first_demo_message(url: str) -> dict[str, object]:
    ws_url = url.replace("http://", "ws://") + "/livesocket/ws"
    async with websockets.connect(ws_url) as ws:
        await ws.send(json.dumps({"topic": "__topic_subscribe__", "body": "moksha.demo.#"}))
        frame: dict[str, object] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return frame


def test_start_serves_dashboard_static_files_and_live_demo_data_on_one_port(
    start: tuple[subprocess.Popen[str], str],
) -> None:
    process, url = start
    with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
        page = http.get("/")
        assets = re.findall(rf'(?:src|href)="({re.escape(STATIC_PREFIX)}/[^"]+)"', page.text)
        asset = http.get(assets[0])
        status = http.get("/livesocket/status")
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="/livesocket/moksha.js"></script>' in page.text
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == "public, max-age=3600"
    assert set(status.json()) >= {"clients", "subscriptions"}

    frame = asyncio.run(first_demo_message(url))
    assert str(frame["topic"]).startswith("moksha.demo.")

    began = time.monotonic()
    stderr = stop(process, signal.SIGTERM)
    assert process.returncode == 0, stderr
    assert time.monotonic() - began < STOP_TIMEOUT
    assert f"Moksha is running at {url}/ (Ctrl-C to stop)" in stderr
    assert stderr.rstrip().endswith("moksha stopped")
    assert "Traceback" not in stderr


def test_ctrl_c_stops_it_cleanly(start: tuple[subprocess.Popen[str], str]) -> None:
    process, _ = start
    stderr = stop(process, signal.SIGINT)
    assert process.returncode == 0, stderr
    assert stderr.rstrip().endswith("moksha stopped")
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr


def test_a_port_in_use_is_a_one_line_error_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["start", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"127.0.0.1:{port}" in err and "--port" in err
    assert "Traceback" not in err


def test_help_names_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["start", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: moksha start [OPTIONS] [CONFIG]")
    for word in ("--host", "--port", "8080", "127.0.0.1", "--config", "--debug"):
        assert word in out
