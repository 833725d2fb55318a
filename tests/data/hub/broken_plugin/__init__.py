"""Plugins registered by mistake, next to two healthy ones, as a plugin author might ship them.

``tests/hub/test_validation.py`` puts this directory on the path, so its
``dist-info`` entry points are found as an installed package's would be.
The healthy ``Ticker`` sends ``{"n": 1}``, ``{"n": 2}``, ... to ``broken.tick``;
``Recorder`` and ``ForgetsSuper`` append what they receive to ``$BROKEN_OUT``.
"""

from __future__ import annotations

import json
import os

from moksha.hub import MokshaHub
from moksha.hub.api import Consumer, PollingProducer
from moksha.message import Message


def _record(who: str, message: Message) -> None:
    with open(os.environ["BROKEN_OUT"], "a", encoding="utf-8") as out:
        out.write(json.dumps([who, message["body"]]) + "\n")


class Recorder(Consumer):
    """Healthy."""

    topic = "broken.tick"

    def consume(self, message: Message) -> None:
        _record("recorder", message)


class ForgetsSuper(Consumer):
    """Its ``__init__`` never calls ``super().__init__(hub)``: the base initialises itself."""

    topic = "broken.tick"

    def __init__(self, hub: MokshaHub) -> None:
        self.label = "forgets-super"

    def consume(self, message: Message) -> None:
        _record(self.label, message)


class BadPoll(PollingProducer):
    """A polling producer listed under ``moksha.consumer``."""

    frequency = 1

    def poll(self) -> None:
        pass


class NotAConsumer:
    """No Moksha base class at all."""

    topic = "broken.tick"

    def consume(self, message: Message) -> None:
        pass


class NoTopic(Consumer):
    """Forgot its topic."""

    def consume(self, message: Message) -> None:
        pass


class NoTopicAfterInit(Consumer):
    """Meant to set its topic in ``__init__`` from the configuration, which has none."""

    def __init__(self, hub: MokshaHub) -> None:
        super().__init__(hub)
        self.topic = hub.config.get("broken.topic", "")

    def consume(self, message: Message) -> None:
        pass


class Ticker(PollingProducer):
    """Healthy: ten ticks a second."""

    frequency = 0.1
    now = True

    def __init__(self, hub: MokshaHub) -> None:
        super().__init__(hub)
        self.count = 0

    def poll(self) -> None:
        self.count += 1
        self.send_message("broken.tick", {"n": self.count})


class NoFrequency(PollingProducer):
    """Forgot its frequency."""

    def poll(self) -> None:
        pass
