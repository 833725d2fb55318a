"""``moksha send`` and ``moksha tail`` reaching a running hub from other processes.

A real hub serving the live socket runs in the test process (its own loop
thread, a free port); the commands reach it over HTTP and WebSocket as a user's
shell would: ``send`` in-process through ``main``, ``tail`` as a subprocess
printing while the test publishes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from moksha.cli import main
from moksha.cli.hub import banner
from moksha.cli.tail import format_line
from moksha.hub import CentralMokshaHub
from support import TIMEOUT, Inbox

MESSAGE_ID = r"[0-9a-f]{16}-\d+"
DEFAULT_WEB_PORT = 8080
# `python -m moksha` with Ctrl-C behaving as in a terminal: a background job of a
# non-interactive shell (how CI may start pytest) inherits SIGINT ignored.
MOKSHA_WITH_CTRL_C = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from moksha.cli import main; raise SystemExit(main(sys.argv[1:]))"
)

StartHub = Callable[..., CentralMokshaHub]


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No config file nearby and no MOKSHA_* variables from the machine running the tests."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("MOKSHA_"):
            monkeypatch.delenv(name)


@pytest.fixture
def start_hub() -> Iterator[StartHub]:
    """Start hubs serving the live socket on a free port (memory bus); closed at teardown."""
    hubs: list[CentralMokshaHub] = []

    def start(**settings: Any) -> CentralMokshaHub:
        config = {
            "moksha.backends": "memory",
            "moksha.livesocket.backend": "websocket",
            "moksha.livesocket.websocket.port": 0,
            **settings,
        }
        hub = CentralMokshaHub(config, [], [])
        hubs.append(hub)
        return hub

    yield start
    for hub in hubs:
        hub.close()  # closing twice is harmless, so a test may close its hub first


@pytest.fixture
def hub(start_hub: StartHub) -> CentralMokshaHub:
    return start_hub()


@pytest.fixture
def hub_url(hub: CentralMokshaHub) -> str:
    assert hub.livesocket_url is not None
    return hub.livesocket_url


def port_of(url: str) -> int:
    return int(url.rpartition(":")[2])


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def require_nothing_on_default_port() -> None:
    """Discovery tries 127.0.0.1:8080 first; a server there would change what it finds."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", DEFAULT_WEB_PORT)) == 0:
            pytest.skip(
                f"something listens on 127.0.0.1:{DEFAULT_WEB_PORT}; discovery would see it"
            )


def received(hub: CentralMokshaHub, pattern: str) -> Inbox:
    inbox = Inbox()
    hub.subscribe(pattern, inbox)
    return inbox


def moksha(*args: str, ctrl_c: bool = False) -> subprocess.Popen[str]:
    """``moksha ARGS`` as another process, stdout and stderr captured."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MOKSHA_")}
    start = ["-c", MOKSHA_WITH_CTRL_C] if ctrl_c else ["-m", "moksha"]
    return subprocess.Popen(
        [sys.executable, *start, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_subscriptions(url: str, count: int, process: subprocess.Popen[str]) -> None:
    """Until the hub reports ``count`` live-socket subscriptions (the tail has subscribed)."""
    deadline = time.monotonic() + 3 * TIMEOUT  # a cold interpreter imports a lot first
    with httpx.Client(trust_env=False, timeout=TIMEOUT) as client:
        while client.get(f"{url}/livesocket/status").json()["subscriptions"] < count:
            assert time.monotonic() < deadline, f"no {count} subscriptions in time"
            try:
                process.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                continue
            _, stderr = process.communicate()
            pytest.fail(f"the tail exited with {process.returncode} first: {stderr}")


def finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def assert_sentence(err: str, *parts: str) -> None:
    """One error sentence naming ``parts``, and no traceback."""
    flat = " ".join(err.split())
    for part in parts:
        assert part in flat, err
    assert "Traceback" not in err


# -- send ------------------------------------------------------------------


def test_send_publishes_through_the_hub_given(
    hub: CentralMokshaHub, hub_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox = received(hub, "demo.#")
    argv = ["send", "demo.x", '{"a": 1}', "--hub", hub_url, "-H", "source=cron"]
    assert main(argv) == 0
    [message] = inbox.wait()
    assert (message.topic, message.body) == ("demo.x", {"a": 1})
    assert message.headers["source"] == "cron"
    captured = capsys.readouterr()
    assert captured.out == f"sent {message.id} to demo.x\n"
    assert captured.err == ""


def test_send_hub_url_from_the_environment(
    hub: CentralMokshaHub,
    hub_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inbox = received(hub, "demo.#")
    # Written as a user may: no scheme, a trailing slash.
    monkeypatch.setenv("MOKSHA_HUB_URL", hub_url.removeprefix("http://") + "/")
    assert main(["send", "demo.env", "hello"]) == 0
    [message] = inbox.wait()
    assert (message.topic, message.body) == ("demo.env", "hello")
    assert re.fullmatch(rf"sent {MESSAGE_ID} to demo\.env\n", capsys.readouterr().out)


def test_send_finds_a_hub_on_the_live_socket_port(
    hub: CentralMokshaHub,
    hub_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_nothing_on_default_port()
    monkeypatch.setenv("MOKSHA_LIVESOCKET_WEBSOCKET_PORT", str(port_of(hub_url)))
    inbox = received(hub, "demo.#")
    assert main(["send", "demo.found", "[1, 2]"]) == 0
    [message] = inbox.wait()
    assert (message.topic, message.body) == ("demo.found", [1, 2])
    captured = capsys.readouterr()
    assert captured.out == f"sent {message.id} to demo.found\n"
    assert "Warning" not in captured.err


def test_send_without_a_hub_says_where_it_looked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_nothing_on_default_port()
    port = free_port()
    monkeypatch.setenv("MOKSHA_LIVESOCKET_WEBSOCKET_PORT", str(port))
    assert main(["send", "demo.lost", "1"]) == 0
    captured = capsys.readouterr()
    assert re.fullmatch(rf"sent {MESSAGE_ID} to demo\.lost\n", captured.out)
    assert_sentence(
        captured.err,
        f"no Moksha hub answers on 127.0.0.1:{DEFAULT_WEB_PORT} or 127.0.0.1:{port}",
        "in-memory bus",
        "--hub URL",
        "moksha start",
    )


def test_send_reports_the_hubs_refusal(hub_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "", "1", "--hub", hub_url]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_sentence(captured.err, f"the hub at {hub_url} refused", "non-empty string")


def test_send_to_a_hub_that_is_not_there(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["send", "demo.x", "1", "--hub", url]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_sentence(captured.err, f"no Moksha hub answers at {url}", "moksha hub", "moksha start")


def test_send_hub_must_be_an_http_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "demo.x", "1", "--hub", "ftp://127.0.0.1:21"]) == 2
    assert "http://" in capsys.readouterr().err


# -- tail ------------------------------------------------------------------


def test_tail_json_prints_each_matching_message(hub: CentralMokshaHub, hub_url: str) -> None:
    tail = moksha("tail", "a.#", "b.*", "--hub", hub_url, "--count", "2", "--json")
    wait_for_subscriptions(hub_url, 2, tail)
    hub.send_message("a.x.y", {"n": 1})
    hub.send_message("c.z", "not for the tail")
    hub.send_message("b.y", "two")
    out, err = finish(tail)
    assert tail.returncode == 0, err
    lines = json_lines(out)
    assert [(line["topic"], line["body"]) for line in lines] == [
        ("a.x.y", {"n": 1}),
        ("b.y", "two"),
    ]
    assert all(line["id"] for line in lines)


def test_tail_pretty_prints_time_topic_and_body(hub: CentralMokshaHub, hub_url: str) -> None:
    tail = moksha("tail", "a.*", "--hub", hub_url, "--count", "1")
    wait_for_subscriptions(hub_url, 1, tail)
    hub.send_message("a.x", {"text": "héllo", "n": [1, 2]})
    out, err = finish(tail)
    assert tail.returncode == 0, err
    # Not a terminal: plain text, no colour codes, nothing cut.
    assert re.fullmatch(r'\d\d:\d\d:\d\d\.\d{3} a\.x  \{"text":"héllo","n":\[1,2\]\}\n', out)


def test_tail_line_never_lets_a_topic_drive_the_terminal() -> None:
    line = format_line({"topic": "evil\x1b[2J.x", "body": {"a": 1}}, datetime(2024, 5, 1, 9, 8, 7))
    assert line.plain == '09:08:07.000 "evil\\u001b[2J.x"  {"a":1}'


def test_tail_since_replays_what_was_missed_and_says_when_some_is_gone(
    start_hub: StartHub, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = start_hub(**{"moksha.livesocket.history.size": 1})
    url = hub.livesocket_url
    assert url is not None
    first = moksha("tail", "a.#", "--hub", url, "--count", "1", "--json")
    wait_for_subscriptions(url, 1, first)
    hub.send_message("a.x", 1)
    out, err = finish(first)
    assert first.returncode == 0, err
    [seen] = json_lines(out)
    hub.send_message("a.x", 2)  # pushed out of the history (one per topic) by the next
    hub.send_message("a.x", 3)
    tail = ["tail", "a.#", "--hub", url, "--count", "1", "--json", "--since"]

    assert main([*tail, seen["id"]]) == 0
    captured = capsys.readouterr()
    [replayed] = json_lines(captured.out)
    assert replayed["body"] == 3
    assert_sentence(captured.err, f"after {seen['id']} are no longer in the hub's history")

    hub.send_message("a.x", 4)
    assert main([*tail, replayed["id"]]) == 0
    captured = capsys.readouterr()
    assert [line["body"] for line in json_lines(captured.out)] == [4]
    assert captured.err == ""


def test_tail_ctrl_c_exits_quietly(hub_url: str) -> None:
    tail = moksha("tail", "#", "--hub", hub_url, ctrl_c=True)
    wait_for_subscriptions(hub_url, 1, tail)
    tail.send_signal(signal.SIGINT)
    out, err = finish(tail)
    assert (tail.returncode, out, err) == (0, "", "")


def test_tail_says_when_the_hub_goes_away(hub: CentralMokshaHub, hub_url: str) -> None:
    tail = moksha("tail", "#", "--hub", hub_url)
    wait_for_subscriptions(hub_url, 1, tail)
    hub.close()
    _, err = finish(tail)
    assert tail.returncode == 1
    assert_sentence(err, f"lost the hub at {hub_url}", "does not reconnect", "--since")
    # Having shown nothing, it names where the hub's history stood when it subscribed.
    assert re.search(r"--since [0-9a-f]+-\d+ to get what it missed", " ".join(err.split()))


def test_tail_to_a_hub_that_is_not_there(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["tail", "#", "--hub", url]) == 1
    assert_sentence(capsys.readouterr().err, f"no Moksha hub answers at {url}", "moksha start")


def test_tail_without_a_hub_says_where_it_looked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_nothing_on_default_port()
    port = free_port()
    monkeypatch.setenv("MOKSHA_LIVESOCKET_WEBSOCKET_PORT", str(port))
    assert main(["tail", "#"]) == 1
    assert_sentence(
        capsys.readouterr().err,
        f"no Moksha hub answers on 127.0.0.1:{DEFAULT_WEB_PORT} or 127.0.0.1:{port}: "
        "start one with `moksha start` or `moksha hub`, or give --hub URL",
    )


def test_tail_help_says_it_does_not_reconnect(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tail", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for word in ["PATTERN...", "--hub", "--json", "--count", "--since", "does not reconnect"]:
        assert word in help_text


# -- hub -------------------------------------------------------------------


def test_hub_banner_shows_the_live_socket(hub: CentralMokshaHub, hub_url: str) -> None:
    assert f"live socket: {hub_url}" in banner(hub)


def test_hub_banner_without_live_socket(start_hub: StartHub) -> None:
    quiet: Mapping[str, Any] = {"moksha.livesocket.backend": None}
    assert "live socket" not in banner(start_hub(**quiet))
