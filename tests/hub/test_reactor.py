"""The Twisted-style ``reactor`` that original plugins import, running on the hub's loop."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from moksha.errors import HubClosed
from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer
from moksha.hub.loop_thread import LoopThread
from moksha.hub.reactor import attach, detach, reactor
from moksha.message import Message

WAIT = 5.0  # seconds any single wait may take before the test fails

_topics = itertools.count()


@pytest.fixture
def hub() -> Iterator[CentralMokshaHub]:
    hub = CentralMokshaHub({"moksha.backends": "memory"}, consumers=[], producers=[])
    try:
        yield hub
    finally:
        hub.close()


class ErrorLog(logging.Handler):
    """Collects the reactor's error records; ``seen`` is set once one arrived.

    Not caplog: its handler sits on the root logger and may receive a record
    from the logging thread after a waiter on ``seen`` already woke up.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.seen.set()


@pytest.fixture
def reactor_errors() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    logger = logging.getLogger("moksha.hub.reactor")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def on_loop(hub: CentralMokshaHub, f: Callable[[], Any]) -> Any:
    """Run ``f`` on the hub's event loop (from a subscriber) and return its result."""
    topic = f"test.on_loop.{next(_topics)}"
    results: list[Any] = []
    errors: list[BaseException] = []

    def callback(message: Message) -> None:
        try:
            results.append(f())
        except BaseException as exc:
            errors.append(exc)

    hub.subscribe(topic, callback)
    # The memory bus runs subscribers before publish returns, so f has run by now.
    hub.send_message(topic, {})
    hub.unsubscribe(callback)
    if errors:
        raise errors[0]
    assert len(results) == 1
    return results[0]


def loop_thread_of(hub: CentralMokshaHub) -> threading.Thread:
    return on_loop(hub, threading.current_thread)  # type: ignore[no-any-return]


class Recorder:
    """A function to schedule: records the thread and arguments of each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[threading.Thread, tuple[Any, ...], dict[str, Any]]] = []
        self.called = threading.Event()

    def __call__(self, *args: Any, **kw: Any) -> None:
        self.calls.append((threading.current_thread(), args, kw))
        self.called.set()


WHERE = ["worker thread", "loop thread"]


def call_from(where: str, hub: CentralMokshaHub, f: Callable[[], Any]) -> Any:
    return f() if where == "worker thread" else on_loop(hub, f)


@pytest.mark.parametrize("where", WHERE)
def test_call_later_runs_f_on_the_loop_with_its_arguments(hub: CentralMokshaHub, where: str):
    f = Recorder()
    call_from(where, hub, lambda: reactor.callLater(0, f, 1, two=2))
    assert f.called.wait(WAIT)
    assert f.calls == [(loop_thread_of(hub), (1,), {"two": 2})]


@pytest.mark.parametrize("where", WHERE)
def test_call_from_thread_runs_f_on_the_loop(hub: CentralMokshaHub, where: str):
    f = Recorder()
    call_from(where, hub, lambda: reactor.callFromThread(f, "a", b="b"))
    assert f.called.wait(WAIT)
    assert f.calls == [(loop_thread_of(hub), ("a",), {"b": "b"})]


@pytest.mark.parametrize("where", WHERE)
def test_call_in_thread_runs_f_off_the_loop(hub: CentralMokshaHub, where: str):
    f = Recorder()
    call_from(where, hub, lambda: reactor.callInThread(f, "a", b="b"))
    assert f.called.wait(WAIT)
    [(thread, args, kw)] = f.calls
    assert (args, kw) == (("a",), {"b": "b"})
    assert thread not in (threading.current_thread(), loop_thread_of(hub))


def test_call_later_fires_once_and_not_before_its_delay(hub: CentralMokshaHub):
    delay = 0.2
    fired_at: list[float] = []
    later = Recorder()
    started = time.monotonic()
    call = reactor.callLater(delay, lambda: fired_at.append(time.monotonic()))
    assert call.active()
    # A call due after it marks the point by which a second firing would have shown.
    reactor.callLater(2 * delay, later)
    assert later.called.wait(WAIT)
    assert len(fired_at) == 1
    assert fired_at[0] - started >= delay
    assert not call.active()


def test_get_time_is_when_the_call_is_due(hub: CentralMokshaHub):
    before = reactor.seconds()
    call = reactor.callLater(30, Recorder())
    try:
        assert before + 30 <= call.getTime() <= reactor.seconds() + 30
    finally:
        call.cancel()


@pytest.mark.parametrize("where", WHERE)
def test_cancel_prevents_the_call(hub: CentralMokshaHub, where: str):
    f, later = Recorder(), Recorder()
    call = call_from(where, hub, lambda: reactor.callLater(0.1, f))
    call_from(where, hub, call.cancel)
    assert not call.active()
    reactor.callLater(0.3, later)
    assert later.called.wait(WAIT)
    assert f.calls == []
    call.cancel()  # cancelling twice is harmless
    assert not call.active()


def boom(*args: Any) -> None:
    raise ValueError("plugin bug")


@pytest.mark.parametrize("method", ["callLater", "callFromThread", "callInThread"])
def test_an_exception_in_f_is_logged_and_later_calls_still_work(
    hub: CentralMokshaHub, reactor_errors: ErrorLog, method: str
):
    def schedule(f: Callable[..., Any]) -> None:
        if method == "callLater":
            reactor.callLater(0, f)
        else:
            getattr(reactor, method)(f)

    schedule(boom)
    assert reactor_errors.seen.wait(WAIT)
    [record] = reactor_errors.records
    assert f"reactor.{method}" in record.getMessage()
    assert record.exc_info is not None and "plugin bug" in str(record.exc_info[1])

    f = Recorder()
    schedule(f)
    assert f.called.wait(WAIT)


def test_an_original_consumer_can_send_later_with_the_reactor(hub: CentralMokshaHub):
    class Delayer(Consumer):
        topic = "t.in"

        def consume(self, message: Message) -> None:
            reactor.callLater(0.05, self.send_message, "t.out", {"echo": message.body})

    arrived: list[Message] = []
    got_it = threading.Event()

    def on_out(message: Message) -> None:
        arrived.append(message)
        got_it.set()

    with CentralMokshaHub({"moksha.backends": "memory"}, consumers=[Delayer], producers=[]) as h:
        h.subscribe("t.out", on_out)
        h.send_message("t.in", 7)
        assert got_it.wait(WAIT)
    assert [m.body for m in arrived] == [{"echo": 7}]


def test_without_a_hub_every_call_says_to_start_one():
    assert not reactor.running
    calls: list[Callable[[], Any]] = [
        lambda: reactor.callLater(0, Recorder()),
        lambda: reactor.callFromThread(Recorder()),
        lambda: reactor.callInThread(Recorder()),
        reactor.seconds,
    ]
    for call in calls:
        with pytest.raises(HubClosed, match="no Moksha hub is running in this process"):
            call()


def test_a_closed_hub_no_longer_serves_the_reactor():
    CentralMokshaHub({"moksha.backends": "memory"}, consumers=[], producers=[]).close()
    assert not reactor.running
    with pytest.raises(HubClosed):
        reactor.callFromThread(Recorder())


def test_the_newest_running_loop_wins_and_older_ones_take_over_again():
    first, second = LoopThread("first"), LoopThread("second")
    try:
        attach(first.loop)
        attach(second.loop)
        f = Recorder()
        reactor.callFromThread(f)
        assert f.called.wait(WAIT)
        assert f.calls[0][0].name == "second"

        detach(second.loop)
        g = Recorder()
        reactor.callFromThread(g)
        assert g.called.wait(WAIT)
        assert g.calls[0][0].name == "first"
    finally:
        detach(first.loop)
        detach(second.loop)
        first.stop()
        second.stop()
    assert not reactor.running


async def test_code_on_an_event_loop_uses_that_loop():
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    ran_on: list[asyncio.AbstractEventLoop] = []

    def f() -> None:
        ran_on.append(asyncio.get_running_loop())
        done.set()

    assert reactor.running
    reactor.callLater(0, f)
    async with asyncio.timeout(WAIT):
        await done.wait()
    assert ran_on == [loop]
    assert reactor.seconds() == pytest.approx(loop.time(), abs=1.0)
