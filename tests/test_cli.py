"""The ``moksha`` command line, as a user runs it: in-process through ``main`` and as processes.

The plugin package in ``tests/data/cli`` (a consumer, a polling producer, a
``moksha.stream`` entry holding two producers, a backend that records what it
publishes, and an entry point whose module does not exist) is copied into a
temporary directory and found through its ``dist-info`` entry points, exactly
as an installed plugin would be.
"""

from __future__ import annotations

import io
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import moksha
from moksha.cli import hub_main, main

DATA = Path(__file__).parent / "data" / "cli"
MESSAGE_ID = r"[0-9a-f]{16}-\d+"


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No config file nearby and no MOKSHA_* variables from the machine running the tests."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("MOKSHA_"):
            monkeypatch.delenv(name)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    """A directory holding the installed demo plugin (package and dist-info)."""
    target = tmp_path / "site"
    shutil.copytree(DATA, target)
    return target


@pytest.fixture
def installed_plugin(plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The demo plugin importable and its entry points visible in this process."""
    monkeypatch.syspath_prepend(str(plugin_dir))
    yield plugin_dir
    sys.modules.pop("demo_plugin", None)


def write_ini(path: Path, **settings: str) -> Path:
    lines = ["[app:main]", *(f"{key} = {value}" for key, value in settings.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- help and version ------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ["hub", "list", "send", "config", "--version", "--config", "--debug"]),
        (["hub"], ["[CONFIG]", "--verbose", "--quiet", "--config", "--debug"]),
        (["list"], ["--json", "--config"]),
        (["send"], ["TOPIC", "BODY", "--header", "--raw", "--config"]),
        (["config"], ["--json", "--config"]),
        (["queues"], ["prune", "--json", "--config"]),
        (["queues", "prune"], ["--dry-run", "--yes", "--config"]),
    ],
)
def test_help_names_the_arguments(
    argv: list[str], expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Usage: moksha {' '.join(argv)}".rstrip())
    for word in expected:
        assert word in out


def test_moksha_hub_script_is_the_hub_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert hub_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: moksha-hub [OPTIONS] [CONFIG]")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"moksha {moksha.__version__}"


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "moksha", "--version"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"moksha {moksha.__version__}"


# -- list ------------------------------------------------------------------


def test_list_shows_installed_plugins_and_broken_ones(
    installed_plugin: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    assert main(["list"]) == 1  # the demo plugin has an entry point that cannot be imported
    lines = capsys.readouterr().out.splitlines()

    def row(name: str) -> str:
        found = [line for line in lines if name in line]
        assert len(found) == 1, f"{name} in {lines}"
        return found[0]

    assert re.search(
        r"consumer .* demo_plugin:PingRecorder .* demo\.ping .* demo-plugin 0\.1",
        row("PingRecorder"),
    )
    assert re.search(
        r"producer .* demo_plugin:Pinger .* demo\.ping .* demo-plugin 0\.1", row(":Pinger")
    )
    assert re.search(r"stream .* demo_plugin:QuietStream .* demo\.stream\.quiet", row("Quiet"))
    assert re.search(
        r"stream .* demo_plugin:TwoTopicStream .* demo\.stream\.a, demo\.stream\.b", row("TwoTopic")
    )
    assert re.search(r"backend .* demo_plugin:RecordingBackend", row("RecordingBackend"))
    assert re.search(r"demo_plugin_not_installed:Nothing .* broken", row("│ missing "))
    broken = row("broken: producer entry point 'missing'")
    assert "ModuleNotFoundError: No module named 'demo_plugin_not_installed'" in broken
    assert "demo-plugin 0.1" in broken


def test_list_json(installed_plugin: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    demo = {row["object"]: row for row in rows if row["distribution"] == "demo-plugin 0.1"}
    assert demo["demo_plugin:PingRecorder"] == {
        "kind": "consumer",
        "group": "moksha.consumer",
        "name": "ping_recorder",
        "object": "demo_plugin:PingRecorder",
        "entry_point": "moksha.consumer: ping_recorder = demo_plugin:PingRecorder",
        "topics": ["demo.ping"],
        "distribution": "demo-plugin 0.1",
        "error": None,
    }
    assert demo["demo_plugin:Pinger"]["kind"] == "producer"
    assert demo["demo_plugin:Pinger"]["topics"] == ["demo.ping"]
    streams = [row for row in rows if row["name"] == "streams"]
    assert [(row["kind"], row["object"], row["topics"]) for row in streams] == [
        ("stream", "demo_plugin:QuietStream", ["demo.stream.quiet"]),
        ("stream", "demo_plugin:TwoTopicStream", ["demo.stream.a", "demo.stream.b"]),
    ]
    broken = demo["demo_plugin_not_installed:Nothing"]
    assert broken["kind"] == "producer"
    assert broken["name"] == "missing"
    assert "No module named 'demo_plugin_not_installed'" in broken["error"]


# -- hub -------------------------------------------------------------------


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_hub_runs_installed_plugins_until_signalled(
    plugin_dir: Path, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    out = tmp_path / "out.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOKSHA_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir), env.get("PYTHONPATH")]))
    env["DEMO_OUT"] = str(out)
    hub = subprocess.Popen(
        [sys.executable, "-m", "moksha", "hub"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while len(read_lines(out)) < 2 and hub.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert read_lines(out)[:2] == ['{"n": 1}', '{"n": 2}']
        hub.send_signal(stop_signal)
        _, stderr = hub.communicate(timeout=10)
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.communicate()
    assert hub.returncode == 0, stderr
    assert "consumer demo_plugin:PingRecorder on demo.ping" in stderr
    assert "producer demo_plugin:Pinger" in stderr
    assert "Ctrl-C to stop" in stderr
    assert stderr.rstrip().endswith("moksha hub stopped")
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["hub", "{path}"],
        ["-c", "{path}", "hub"],
        ["hub", "-c", "{path}"],
        ["config", "--config", "{path}"],
        ["send", "-c", "{path}", "demo.x", "1"],
    ],
)
def test_missing_config_file_is_a_one_line_usage_error(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "nonexistent.ini")
    assert main([arg.format(path=path) for arg in argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert path in captured.err
    assert "does not exist" in captured.err
    assert "Traceback" not in captured.err


def test_bad_config_value_names_key_and_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = write_ini(tmp_path / "bad.ini", **{"moksha.workers_per_consumer": "many"})
    assert main(["hub", str(ini)]) == 2
    err = capsys.readouterr().err
    assert "moksha.workers_per_consumer" in err
    assert str(ini) in err
    assert "'many'" in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ini = write_ini(tmp_path / "bad.ini", **{"moksha.workers_per_consumer": "many"})
    assert main(["--debug", "hub", str(ini)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "ConfigError" in err


def test_verbose_and_quiet_together_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hub", "-v", "-q"]) == 2
    assert "not both" in capsys.readouterr().err


# -- send ------------------------------------------------------------------


def test_send_without_broker_warns_about_the_in_memory_bus(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["send", "demo.x", '{"a": 1}']) == 0
    captured = capsys.readouterr()
    assert re.fullmatch(rf"sent {MESSAGE_ID} to demo\.x\n", captured.out)
    assert "no broker is configured" in captured.err
    assert "in-memory bus" in captured.err
    assert "amqp_broker" in captured.err


@pytest.fixture
def recorded(installed_plugin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Publish through the demo plugin's backend, which appends each message to a file."""
    sent = tmp_path / "sent.jsonl"
    monkeypatch.setenv("MOKSHA_BACKENDS", "demo-record")
    monkeypatch.setenv("DEMO_SENT", str(sent))
    return sent


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in read_lines(path)]


@pytest.mark.parametrize(
    ("argv", "payload"),
    [
        (["demo.x", '{"a": 1}'], '{"a":1}'),
        (["demo.x", "42"], "42"),
        (["demo.x", "hello world"], '"hello world"'),
        (["demo.x", '{"a": 1}', "--raw"], '{"a": 1}'),
        (["demo.x", "not json", "--raw"], "not json"),
    ],
)
def test_send_encodes_body_as_json_unless_raw(
    recorded: Path, argv: list[str], payload: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["send", *argv]) == 0
    captured = capsys.readouterr()
    [record] = records(recorded)
    assert record["topic"] == "demo.x"
    assert record["payload"] == payload
    assert captured.out == f"sent {record['id']} to demo.x\n"
    assert "in-memory bus" not in captured.err


def test_send_headers_and_body_from_stdin(
    recorded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"from": "stdin"}\n'))
    assert main(["send", "demo.x", "-", "--header", "source=cron", "-H", "empty="]) == 0
    [record] = records(recorded)
    assert record["payload"] == '{"from":"stdin"}'
    assert record["headers"] == {"source": "cron", "empty": ""}


def test_send_backends_come_from_the_config_file(
    installed_plugin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = tmp_path / "sent.jsonl"
    monkeypatch.setenv("DEMO_SENT", str(sent))
    ini = write_ini(tmp_path / "record.ini", **{"moksha.backends": "demo-record"})
    assert main(["send", "demo.y", "[1, 2]", "-c", str(ini)]) == 0
    assert [(r["topic"], r["payload"]) for r in records(sent)] == [("demo.y", "[1,2]")]


def test_send_header_without_equals_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "demo.x", "1", "--header", "oops"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "KEY=VALUE" in captured.err
    assert "Traceback" not in captured.err


# -- config ----------------------------------------------------------------


@pytest.fixture
def config_with_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MOKSHA_WORKERS_PER_CONSUMER", "3")
    return write_ini(tmp_path / "secret.ini", stomp_pass="hunter2", stomp_user="moksha")


def test_config_shows_values_and_sources_but_not_secrets(
    config_with_secret: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "-c", str(config_with_secret)]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert re.search(
        r"\b3\b.*environment MOKSHA_WORKERS_PER_CONSUMER", lines["moksha.workers_per_consumer"]
    )
    assert re.search(rf"\*\*\*.*{re.escape(str(config_with_secret))}", lines["stomp_pass"])
    assert re.search(rf"moksha .*{re.escape(str(config_with_secret))}", lines["stomp_user"])
    assert re.search(r"amq\.topic .*default", lines["amqp_exchange"])


def test_config_json(config_with_secret: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(config_with_secret), "config", "--json"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    rows = json.loads(out)
    assert rows["moksha.workers_per_consumer"] == {
        "value": 3,
        "source": "environment MOKSHA_WORKERS_PER_CONSUMER",
    }
    assert rows["stomp_pass"] == {"value": "***", "source": str(config_with_secret)}
    assert rows["amqp_exchange"] == {"value": "amq.topic", "source": "default"}


def test_config_check_fails_on_a_misspelt_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = write_ini(tmp_path / "typo.ini", amqp_brokr="amqp://127.0.0.1/", **{"myapp.x": "1"})
    assert main(["config", "--check", "-c", str(ini)]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert f"unknown key 'amqp_brokr' in {ini}: did you mean 'amqp_broker'?" in line


def test_config_check_passes_a_clean_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = write_ini(tmp_path / "fine.ini", amqp_broker="amqp://127.0.0.1/", **{"myapp.x": "1"})
    assert main(["config", "--check", "-c", str(ini)]) == 0
    assert "no problems found" in capsys.readouterr().err


def test_config_check_names_a_line_without_separator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = tmp_path / "nosep.ini"
    ini.write_text("[app:main]\namqp_broker amqp://127.0.0.1/\n", encoding="utf-8")
    assert main(["config", "--check", "-c", str(ini)]) == 2
    err = capsys.readouterr().err
    assert f"{ini}, line 2: 'amqp_broker amqp://127.0.0.1/' has no '='" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", [["send", "demo.x", "1"], ["hub"]])
def test_commands_log_one_warning_per_misspelt_key(tmp_path: Path, command: list[str]) -> None:
    ini = write_ini(tmp_path / "typo.ini", **{"moksha.worker_per_consumer": "2"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOKSHA_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moksha", *command, "-c", str(ini)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    )
    assert proc.stderr is not None
    err = b""
    stopping = False
    try:
        # Raw reads: a buffered reader could hold the banner while select() waits.
        fd = proc.stderr.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and selector.select(deadline - time.monotonic()):
                chunk = os.read(fd, 65536)
                if not chunk:
                    break  # the command ended
                err += chunk
                if b"Ctrl-C to stop" in err and not stopping:  # the hub started
                    proc.send_signal(signal.SIGTERM)
                    stopping = True
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    lines = err.decode().splitlines()
    warnings = [line for line in lines if "WARNING" in line]
    assert len(warnings) == 1, err.decode()
    assert f"'moksha.worker_per_consumer' in {ini}: did you mean" in warnings[0]
    assert "'moksha.workers_per_consumer'" in warnings[0]
