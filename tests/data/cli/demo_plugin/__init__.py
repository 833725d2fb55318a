"""A tiny Moksha plugin package that ``tests/test_cli.py`` installs into a temporary directory.

It is found through ``demo_plugin-0.1.dist-info/entry_points.txt`` once that
directory is on ``sys.path`` (or ``PYTHONPATH``), as an installed plugin would be.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from moksha.hub import MokshaHub
from moksha.hub.api import Consumer, PollingProducer, Producer
from moksha.hub.backends import Backend, Handler, Subscription
from moksha.message import Message


class PingRecorder(Consumer):
    """Appends the body of every ``demo.ping`` message, as a JSON line, to ``$DEMO_OUT``."""

    topic = "demo.ping"

    def consume(self, message: Message) -> None:
        with open(os.environ["DEMO_OUT"], "a", encoding="utf-8") as out:
            out.write(json.dumps(message["body"]) + "\n")


class Pinger(PollingProducer):
    """Sends ``{"n": 1}``, ``{"n": 2}``, ... to ``demo.ping`` five times a second."""

    topic = "demo.ping"
    now = True
    frequency = 0.2

    def __init__(self, hub: MokshaHub) -> None:
        super().__init__(hub)
        self.counter = 0

    def poll(self) -> None:
        self.counter += 1
        self.send_message(self.topic, {"n": self.counter})


class QuietStream(Producer):
    """A producer that sends nothing; listed under ``moksha.stream``."""

    topic = "demo.stream.quiet"


class TwoTopicStream(Producer):
    """A second stream in the same entry point, with two topics."""

    topic = ["demo.stream.a", "demo.stream.b"]


STREAMS = [QuietStream, TwoTopicStream]


class _NoSubscription(Subscription):
    patterns = ()

    async def cancel(self) -> None:
        pass


class RecordingBackend(Backend):
    """A backend that appends each published message, as a JSON line, to ``$DEMO_SENT``."""

    name = "demo-record"

    async def connect(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def publish(self, message: Message) -> None:
        record = {
            "topic": message.topic,
            "payload": message.payload.decode(),
            "headers": message.headers,
            "id": message.id,
        }
        with open(os.environ["DEMO_SENT"], "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")

    async def subscribe(
        self, patterns: Sequence[str], handler: Handler, *, group: str | None = None
    ) -> Subscription:
        return _NoSubscription()
