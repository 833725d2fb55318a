"""``moksha start``, as a user runs it: one process, one port, the dashboard with live demo data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.protocol import State
from websockets.uri import parse_uri

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
    with started(tmp_path) as running:
        yield running


@contextlib.contextmanager
def started(tmp_path: Path, settings: str = "") -> Iterator[tuple[subprocess.Popen[str], str]]:
    """What the ``start`` fixture yields, with more ``settings`` lines in development.ini."""
    port, hub_port = free_port(), free_port()
    (tmp_path / "development.ini").write_text(
        "[app:main]\n"
        "moksha.livesocket.backend = websocket\n"
        f"moksha.livesocket.websocket.port = {hub_port}\n" + settings
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


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    """Poll ``condition`` (bounded in time); whether it became true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class UnansweringClient:
    """A WebSocket client that reads only when told, so the node's close waits for it.

    Sans-I/O (websockets' ``ClientProtocol``) over a plain socket: nothing answers
    the server behind the test's back, as a library's background reader would.
    """

    def __init__(self, url: str) -> None:
        ws_url = url.replace("http://", "ws://") + "/livesocket/ws"
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT)
        self.protocol = ClientProtocol(parse_uri(ws_url))
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while self.protocol.state is State.CONNECTING:
            self._read()
        assert self.protocol.state is State.OPEN, self.protocol.handshake_exc

    def send(self, frame: dict[str, object]) -> None:
        self.protocol.send_text(json.dumps(frame).encode())
        self._flush()

    def read_until_closed(self) -> list[Frame]:
        """Read what the node sent, answer its close; the frames read (bounded in time)."""
        frames: list[Frame] = []
        deadline = time.monotonic() + TIMEOUT
        while self.protocol.close_rcvd is None and time.monotonic() < deadline:
            self._read()
            frames += [e for e in self.protocol.events_received() if isinstance(e, Frame)]
        self._flush()  # the protocol answered the close
        return frames

    def _read(self) -> None:
        data = self.sock.recv(65536)
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()

    def _flush(self) -> None:
        self.sock.sendall(b"".join(self.protocol.data_to_send()))


def test_sigterm_stops_accepting_at_once_then_drains_its_clients(tmp_path: Path) -> None:
    # A long moksha.shutdown_timeout: the node drains until its client answers the close.
    with started(tmp_path, "moksha.shutdown_timeout = 60\n") as (process, url):
        port = urlsplit(url).port
        assert port is not None
        client = UnansweringClient(url)
        client.send({"topic": "__topic_subscribe__", "body": "moksha.demo.#"})
        # A connection opened before the signal (a balancer's kept-alive one) stays usable.
        with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
            assert http.get("/ready").status_code == 200
            process.send_signal(signal.SIGTERM)

            assert wait_until(lambda: not listening(port)), "new connections still accepted"
            assert process.poll() is None, "the node exited instead of draining"
            ready = http.get("/ready")
            assert ready.status_code == 503
            assert any("stopping" in reason for reason in ready.json()["reasons"])
            sse = http.get("/livesocket/sse", params={"topic": "moksha.demo.#"})
            assert sse.status_code == 503
            assert "another" in sse.json()["error"]
            assert process.poll() is None, "the node stopped before its client left"

        frames = client.read_until_closed()
        assert client.protocol.close_rcvd is not None
        assert client.protocol.close_rcvd.code == 1012
        assert frames[-1].opcode.name == "CLOSE"
        _, stderr = process.communicate(timeout=STOP_TIMEOUT)
        client.sock.close()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
