"""Plugins registered by mistake: skipped with one ERROR each, never taking the hub down.

The package in ``tests/data/hub`` (two healthy plugins and one of each
mistake) is found through its ``dist-info`` entry points, as an installed
package would be; ``moksha hub`` runs as a process, as an operator runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from moksha.cli import main
from moksha.errors import PluginError
from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer, PollingProducer, Producer
from support import TIMEOUT, consumer_of

DATA = Path(__file__).parent.parent / "data" / "hub"
DIST = "distribution broken-plugin 0.1"

# Entry point -> words its one ERROR line must hold (what is wrong, and the fix).
BROKEN = {
    "bad_poll": ["BadPoll is a PollingProducer, not a Consumer", "register it on moksha.producer"],
    "not_a_consumer": [
        "NotAConsumer does not subclass moksha.hub.api.Consumer",
        "class NotAConsumer(Consumer)",
    ],
    "no_topic": ["NoTopic has no topic", "set topic = "],
    "missing": ["cannot be imported", "No module named 'broken_plugin_not_installed'", "install"],
    "no_frequency": ["NoFrequency has no frequency", "set frequency = 60"],
}
# Found only once the constructor ran, so `moksha list` cannot see it.
BROKEN_AT_RUN = {"no_topic_after_init": ["NoTopicAfterInit has no topic", "set topic = "]}


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    target = tmp_path / "site"
    shutil.copytree(DATA, target)
    return target


@pytest.fixture
def installed(plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(plugin_dir))
    monkeypatch.chdir(plugin_dir)
    for name in list(os.environ):
        if name.startswith("MOKSHA_"):
            monkeypatch.delenv(name)
    yield plugin_dir
    sys.modules.pop("broken_plugin", None)


def error_lines(text: str) -> dict[str, list[str]]:
    """The lines naming each entry point of the broken plugin."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if match := re.search(r"entry point '(\w+)' \(moksha\.\w+ = ", line):
            found.setdefault(match[1], []).append(line)
    return found


def read_records(path: Path) -> list[list[object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_moksha_hub_skips_each_broken_entry_point_with_one_error(plugin_dir: Path) -> None:
    out = plugin_dir / "out.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOKSHA_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir), env.get("PYTHONPATH")]))
    env["BROKEN_OUT"] = str(out)
    hub = subprocess.Popen(
        [sys.executable, "-m", "moksha", "hub"],
        cwd=plugin_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while hub.poll() is None and time.monotonic() < deadline:
            if {who for who, _ in read_records(out)} >= {"recorder", "forgets-super"}:
                break
            time.sleep(0.05)
        hub.send_signal(signal.SIGTERM)
        _, stderr = hub.communicate(timeout=15)
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.communicate()
    assert hub.returncode == 0, stderr
    # The healthy plugins ran, including the one whose __init__ forgot super().__init__.
    assert {who for who, _ in read_records(out)} >= {"recorder", "forgets-super"}, stderr
    assert "consumer broken_plugin:ForgetsSuper on broken.tick" in stderr
    lines = error_lines(stderr)
    assert lines.keys() == BROKEN.keys() | BROKEN_AT_RUN.keys(), stderr
    for name, words in {**BROKEN, **BROKEN_AT_RUN}.items():
        [line] = lines[name]
        assert "ERROR" in line and DIST in line
        for word in words:
            assert word in line
    assert "Traceback" not in stderr
    assert "started on \n" not in stderr + "\n"


def test_moksha_list_shows_the_same_verdicts_and_fails(
    installed: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    assert main(["list"]) == 1
    out = capsys.readouterr().out
    lines = error_lines(out)
    assert lines.keys() == BROKEN.keys()
    for name, words in BROKEN.items():
        [line] = lines[name]
        assert line.startswith("broken: ") and DIST in line
        for word in words:
            assert word in line
    cells = [[cell.strip() for cell in line.split("│")] for line in out.splitlines()]
    status = {row[3]: row[6] for row in cells if len(row) == 8}
    assert status["broken_plugin:Recorder"] == "ok"
    assert status["broken_plugin:BadPoll"] == "broken"


def test_moksha_list_json_carries_the_sentence(
    installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "--json"]) == 1
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["recorder"]["error"] is None
    assert rows["forgets_super"]["error"] is None
    assert "BadPoll is a PollingProducer, not a Consumer" in rows["bad_poll"]["error"]


def test_moksha_list_succeeds_when_every_plugin_is_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["list"]) == 0
    assert "broken:" not in capsys.readouterr().out


# -- classes passed in code ---------------------------------------------------


class Fine(Consumer):
    topic = "fine"

    def consume(self, message):
        pass


class NoTopic(Consumer):
    def consume(self, message):
        pass


class NotAConsumer:
    topic = "a"


class NoConsume(Consumer):
    topic = "a"


class WrongTopicType(Consumer):
    topic = 42

    def consume(self, message):
        pass


class Poller(PollingProducer):
    frequency = 1

    def poll(self):
        pass


class NoFrequency(PollingProducer):
    def poll(self):
        pass


class StringFrequency(PollingProducer):
    frequency = "5"

    def poll(self):
        pass


class NegativeFrequency(PollingProducer):
    frequency = timedelta(seconds=-1)

    def poll(self):
        pass


class NoPoll(PollingProducer):
    frequency = 1


class InitWithoutHub(Consumer):
    topic = "a"

    def __init__(self):
        super().__init__(None)

    def consume(self, message):
        pass


class ProducerInitWithTwoArguments(Producer):
    def __init__(self, hub, extra):
        super().__init__(hub)


@pytest.mark.parametrize(
    ("consumers", "producers", "expected"),
    [
        ([Poller], [], "Poller is a PollingProducer, not a Consumer; register it on moksha.prod"),
        ([NotAConsumer], [], "NotAConsumer does not subclass moksha.hub.api.Consumer"),
        ([NoTopic], [], "NoTopic has no topic, so it would receive nothing; set topic = "),
        ([NoConsume], [], "NoConsume does not define consume(self, message)"),
        ([WrongTopicType], [], "WrongTopicType.topic is 42; it must be a pattern"),
        ([], [Fine], "Fine is a Consumer, not a Producer; register it on moksha.consumer"),
        ([], [NotAConsumer], "NotAConsumer does not subclass moksha.hub.api.Producer"),
        ([], [NoFrequency], "NoFrequency has no frequency; set frequency = 60"),
        ([], [StringFrequency], "StringFrequency.frequency is '5'; set frequency"),
        ([], [NegativeFrequency], "NegativeFrequency.frequency is datetime.timedelta(days=-1"),
        ([], [NoPoll], "NoPoll does not define poll(self)"),
        ([InitWithoutHub], [], "InitWithoutHub.__init__(self) cannot take the hub; write def"),
        ([], [ProducerInitWithTwoArguments], "__init__(self, hub, extra) cannot take the hub"),
    ],
)
def test_a_hub_given_a_bad_class_raises_plugin_error(
    memory_config, consumers, producers, expected
) -> None:
    with pytest.raises(PluginError) as raised:
        CentralMokshaHub(memory_config, consumers, producers)
    assert expected in str(raised.value)
    assert str(raised.value).startswith(("consumer test_validation.", "producer test_validation."))


def test_a_topic_missing_after_init_raises_plugin_error_at_start(memory_config) -> None:
    class TopicFromConfig(Consumer):
        def __init__(self, hub):
            super().__init__(hub)
            self.topic = hub.config.get("nothing.here", "")

        def consume(self, message):
            pass

    with pytest.raises(PluginError, match="TopicFromConfig has no topic"):
        CentralMokshaHub(memory_config, [Fine, TopicFromConfig], [])
    # The consumer started before the bad one was stopped with the hub.
    for worker in threading.enumerate():
        if worker.name == "moksha Fine-0":
            worker.join(TIMEOUT)
    assert not [t for t in threading.enumerate() if t.name == "moksha Fine-0"]


def test_a_frequency_set_in_init_is_accepted(memory_config, inbox) -> None:
    class Configured(PollingProducer):
        def __init__(self, hub):
            self.frequency = 0.01
            super().__init__(hub)

        def poll(self):
            inbox(1)

    with CentralMokshaHub(memory_config, [], [Configured]):
        inbox.wait(2)


def test_a_consumer_forgetting_super_init_works(memory_config, inbox) -> None:
    Recording = consumer_of("forgetful", inbox)

    class Forgetful(Recording):
        def __init__(self, hub):
            self.extra = "mine"

    with CentralMokshaHub(memory_config, [Forgetful], []) as hub:
        hub.send_message("forgetful", 1)
        assert inbox.wait(1) == [1]
        [consumer] = hub.consumers
        assert consumer.hub is hub and consumer.extra == "mine"
        stats = consumer.stats()
        assert stats["initialized"] is True and stats["headcount_in"] == 1


def test_a_producer_forgetting_super_init_stops(memory_config, inbox) -> None:
    class Forgetful(PollingProducer):
        frequency = 0.01

        def __init__(self, hub):
            pass

        def poll(self):
            self.send_message("forgetful.tick", 1)

    with CentralMokshaHub(memory_config, [consumer_of("forgetful.tick", inbox)], [Forgetful]):
        inbox.wait(2)
    # Closing stopped it: stop() worked without the base's __init__.


def test_a_plain_producer_is_not_checked_for_frequency(memory_config) -> None:
    class Plain(Producer):
        pass

    with CentralMokshaHub(memory_config, [], [Plain]) as hub:
        assert [type(p).__name__ for p in hub.producers] == ["Plain"]


def test_a_topic_or_frequency_property_is_checked_on_the_instance(memory_config, inbox) -> None:
    class FromConfig(Consumer):
        @property
        def topic(self):
            return self.hub.config.get("test.topic", "")

        def consume(self, message):
            inbox(message.body)

    class Ticking(PollingProducer):
        @property
        def frequency(self):
            return 0.01

        def poll(self):
            self.send_message("from.config", 1)

    config = {**memory_config, "test.topic": "from.config"}
    with CentralMokshaHub(config, [FromConfig], [Ticking]):
        inbox.wait(2)
    with pytest.raises(PluginError, match="FromConfig has no topic"):
        CentralMokshaHub(memory_config, [FromConfig], [])
