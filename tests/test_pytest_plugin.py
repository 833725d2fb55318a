"""The pytest plugin, used the way a plugin author's project uses it: from a test file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOUBLER = """
from moksha.hub.api import Consumer


class Doubler(Consumer):
    topic = "in.number"

    def consume(self, message):
        self.send_message("out.double", message.body * 2)
"""


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_plugin_author=DOUBLER + source)
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_a_consumer_is_tested_without_a_broker(pytester: pytest.Pytester):
    result = run(
        pytester,
        """
def test_doubler_doubles(moksha_hub):
    moksha_hub.start(consumers=[Doubler])
    moksha_hub.send("in.number", 21)
    assert moksha_hub.wait_for("out.double")[0].body == 42


def test_every_message_is_recorded_in_order(moksha_hub):
    moksha_hub.start(consumers=[Doubler])
    moksha_hub.send("in.number", 1)
    moksha_hub.send("in.number", 2)
    doubled = moksha_hub.wait_for("out.*", count=2)
    assert sorted(m.body for m in doubled) == [2, 4]
    assert [m.body for m in moksha_hub.wait_for("in.number", count=2)] == [1, 2]
    assert len(moksha_hub.messages) == 4
""",
    )
    result.assert_outcomes(passed=2)


def test_a_message_that_never_comes_fails_the_test_saying_what_came(pytester: pytest.Pytester):
    result = run(
        pytester,
        """
import time


def test_expects_the_wrong_topic(moksha_hub):
    moksha_hub.start(consumers=[Doubler])
    moksha_hub.send("in.number", 21)
    moksha_hub.send("in.number", 1)
    moksha_hub.wait_for("out.double", count=2)
    started = time.monotonic()
    try:
        moksha_hub.wait_for("out.triple", timeout=0.5)
    finally:
        print(f"waited {time.monotonic() - started:.3f}s")
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: expected 1 message on 'out.triple' within 0.5s, got 0."
            " What arrived instead, 4 messages: in.number (2), out.double (2).",
        ]
    )
    [waited] = re.findall(r"^waited ([0-9.]+)s$", result.stdout.str(), re.MULTILINE)
    # It gave up at its own timeout, not earlier and not at the 5s default.
    assert 0.5 <= float(waited) < 2.5


def test_a_producer_that_polls_at_start_has_its_first_message_recorded(
    pytester: pytest.Pytester,
):
    result = run(
        pytester,
        """
from moksha.hub.api import PollingProducer


class Clock(PollingProducer):
    frequency = 3600
    now = True

    def poll(self):
        self.send_message("clock.tick", {"tick": 1})


def test_first_tick(moksha_hub):
    moksha_hub.start(producers=[Clock])
    [tick] = moksha_hub.wait_for("clock.#")
    assert tick.body == {"tick": 1}
""",
    )
    result.assert_outcomes(passed=1)


def test_async_tests_wait_without_blocking_their_loop(pytester: pytest.Pytester):
    result = run(
        pytester,
        """
import asyncio

import pytest


@pytest.mark.asyncio
async def test_doubler_from_async_code(moksha_hub):
    moksha_hub.start(consumers=[Doubler])
    # Waiting first: if await_for blocked the loop, asend could never run.
    waiting = asyncio.ensure_future(moksha_hub.await_for("out.double", timeout=2))
    await moksha_hub.asend("in.number", 21)
    [doubled] = await waiting
    assert doubled.body == 42
""",
    )
    result.assert_outcomes(passed=1)


def test_config_set_in_the_test_reaches_the_hub(pytester: pytest.Pytester):
    result = run(
        pytester,
        """
def test_workers(moksha_hub, moksha_config):
    moksha_config["moksha.workers_per_consumer"] = 3
    hub = moksha_hub.start(consumers=[Doubler])
    assert hub.config.workers_per_consumer == 3
    assert [b.name for b in hub.backends] == ["memory"]
""",
    )
    result.assert_outcomes(passed=1)


def test_misuse_reads_as_a_sentence(pytester: pytest.Pytester):
    result = run(
        pytester,
        """
import pytest

from moksha.errors import HubClosed, MokshaError


def test_send_before_start(moksha_hub):
    with pytest.raises(HubClosed, match="call moksha_hub.start"):
        moksha_hub.send("in.number", 1)


def test_start_twice(moksha_hub):
    moksha_hub.start()
    with pytest.raises(MokshaError, match="already called in this test"):
        moksha_hub.start()


def test_consumed_by_a_consumer_not_started(moksha_hub):
    moksha_hub.start()
    with pytest.raises(MokshaError, match="consumed_by=Doubler: it is not one of the consumers"):
        moksha_hub.wait_for("out.double", consumed_by=Doubler, timeout=30)
""",
    )
    result.assert_outcomes(passed=3)


SLOW_SAVER = """
import time

SAVED = []


class SlowSaver(Consumer):
    topic = "out.double"

    def consume(self, message):
        time.sleep(0.05)  # the side effect lands well after the message was recorded
        SAVED.append(message.body)


class Picky(Consumer):
    topic = "in.picky"

    def validate(self, message):
        if message.body < 0:
            raise ValueError("negative")

    def consume(self, message):
        SAVED.append(message.body)
"""


def test_a_test_waits_until_the_consumer_finished_with_the_message(pytester: pytest.Pytester):
    result = run(
        pytester,
        SLOW_SAVER
        + """
def test_processed_waits_for_the_side_effect(moksha_hub):
    moksha_hub.start(consumers=[SlowSaver])
    sent = moksha_hub.send("out.double", 4)
    assert sent.processed() is sent.message
    assert SAVED == [4]


def test_wait_for_consumed_by_waits_for_a_message_another_consumer_sent(moksha_hub):
    SAVED.clear()
    moksha_hub.start(consumers=[Doubler, SlowSaver])
    moksha_hub.send("in.number", 21)
    [doubled] = moksha_hub.wait_for("out.double", consumed_by=SlowSaver)
    assert doubled.body == 42 and SAVED == [42]


def test_a_rejected_message_is_processed_too(moksha_hub):
    SAVED.clear()
    moksha_hub.start(consumers=[Picky])
    moksha_hub.send("in.picky", -1).processed()
    moksha_hub.send("in.picky", 1).processed()
    assert SAVED == [1]


def test_the_consumers_are_the_classes_given(moksha_hub):
    hub = moksha_hub.start(consumers=[SlowSaver])
    [saver] = hub.consumers[1:]
    assert isinstance(saver, SlowSaver) and type(saver).__name__ == "SlowSaver"
""",
    )
    result.assert_outcomes(passed=4)


def test_a_consumer_that_raises_fails_the_waiting_test_at_once(pytester: pytest.Pytester):
    result = run(
        pytester,
        """
import time

import pytest


class Broken(Consumer):
    topic = "in.number"

    def consume(self, message):
        raise ZeroDivisionError(f"cannot divide {message.body}")


def timed(call):
    started = time.monotonic()
    try:
        call()
    finally:
        print(f"waited {time.monotonic() - started:.3f}s")


def test_processed(moksha_hub):
    moksha_hub.start(consumers=[Broken])
    sent = moksha_hub.send("in.number", 7)
    timed(lambda: sent.processed(timeout=30))


def test_wait_for(moksha_hub):
    moksha_hub.start(consumers=[Broken, Doubler])
    moksha_hub.send("in.number", 7)
    timed(lambda: moksha_hub.wait_for("nothing.comes", timeout=30))


def test_failures_can_be_tested_when_asked(moksha_hub):
    moksha_hub.raise_consumer_errors = False
    moksha_hub.start(consumers=[Broken], config={"moksha.retry_delay": 0.01})
    moksha_hub.send("in.number", 7)
    [dead] = moksha_hub.wait_for("in.number.dead")
    assert "ZeroDivisionError: cannot divide 7" in dead.headers["moksha-error"]
    assert [type(e.exception) for e in moksha_hub.errors] == [ZeroDivisionError] * 4
    assert moksha_hub.errors[0].consumer is Broken
""",
    )
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        ["*ZeroDivisionError: cannot divide 7", "*raised by Broken.consume on in.number (*)"]
    )
    waited = [float(w) for w in re.findall(r"^waited ([0-9.]+)s$", result.stdout.str(), re.M)]
    assert len(waited) == 2 and max(waited) < 5  # not the 30s timeout


def test_async_tests_wait_until_processed_without_blocking_their_loop(pytester: pytest.Pytester):
    result = run(
        pytester,
        SLOW_SAVER
        + """
import pytest


@pytest.mark.asyncio
async def test_processed_from_async_code(moksha_hub):
    moksha_hub.start(consumers=[SlowSaver])
    sent = await moksha_hub.asend("out.double", 8)
    await sent.aprocessed()
    assert SAVED == [8]
""",
    )
    result.assert_outcomes(passed=1)


def test_the_readme_test_examples_pass(pytester: pytest.Pytester):
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    consumer = next(b for b in blocks if "class Thermometer(Consumer)" in b)
    tests = [b for b in blocks if "(moksha_hub)" in b]
    assert len(tests) == 2
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_readme_examples="\n\n".join([consumer, *tests]))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)
