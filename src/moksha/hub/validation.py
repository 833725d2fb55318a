"""Checking plugin classes before the hub runs them.

A plugin registered by mistake must cost its author one clear line, not the
hub: every class found on an entry point (or passed to
:class:`~moksha.hub.CentralMokshaHub`) is checked here first.

================  ============================================================
consumers         a class, a :class:`~moksha.hub.api.Consumer` subclass (not a
                  producer), ``consume`` defined, an ``__init__`` taking the
                  hub, a topic (on the class, or set by its ``__init__``,
                  checked once it ran)
producers         a class, a :class:`~moksha.hub.api.Producer` subclass (not a
                  consumer), an ``__init__`` taking the hub; a
                  :class:`~moksha.hub.api.PollingProducer` also defines
                  ``poll`` and a ``frequency`` (seconds or timedelta; on the
                  class, or set by its ``__init__``, checked once it ran)
================  ============================================================

The base classes initialise themselves even when a subclass's ``__init__``
forgets ``super().__init__(hub)``, so that mistake needs no check.

Each problem is one sentence saying what is wrong and how to fix it;
:func:`rejection` puts in front of it where the plugin came from (the entry
point and its distribution, or the class passed in code).  The hub logs it as
one ERROR and skips the plugin when it came from an entry point, and raises
:class:`~moksha.errors.PluginError` with it when the class was passed in code;
``moksha list`` shows the same sentence.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from moksha.hub.api.consumer import Consumer
from moksha.hub.api.producer import PollingProducer, Producer
from moksha.plugins import CONSUMER_GROUPS, PRODUCER_GROUPS, Plugin, iter_plugins

__all__ = [
    "IMPORT_FIX",
    "Origin",
    "checked_plugins",
    "consumer_class_problem",
    "consumer_problem",
    "plugin_problem",
    "producer_class_problem",
    "producer_problem",
    "rejection",
]

log = logging.getLogger("moksha.hub")


IMPORT_FIX = "install what it imports, or correct the entry point's module:object"
"""The fix for an entry point that cannot be imported."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a plugin class came from, for error sentences.

    Attributes:
        group: the entry-point group (``moksha.consumer``, ...), or None when passed in code.
        name: the entry point's name.
        value: what the entry point references (``pkg.module:Class``).
        distribution: the distribution declaring it (``"name version"``), if known.
    """

    group: str | None = None
    name: str | None = None
    value: str | None = None
    distribution: str | None = None

    def describe(self, kind: str, obj: Any) -> str:
        """``consumer entry point 'x' (moksha.consumer = pkg:X, distribution d 1.0)``.

        Or ``consumer pkg.X`` for a class passed in code.
        """
        if self.group is None:
            return f"{kind} {_dotted(obj)}"
        dist = f", distribution {self.distribution}" if self.distribution else ""
        return f"{kind} entry point {self.name!r} ({self.group} = {self.value}{dist})"


def _dotted(obj: Any) -> str:
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    return repr(obj)


def _name(obj: Any) -> str:
    return obj.__qualname__ if isinstance(obj, type) else repr(obj)


def rejection(origin: Origin, kind: str, obj: Any, problem: str) -> str:
    """The one sentence logged (or raised) for a plugin that cannot run.

    Args:
        origin: where it came from.
        kind: ``consumer`` or ``producer``.
        obj: what was found (usually a class).
        problem: what :func:`consumer_class_problem` and friends said.

    Returns:
        ``<kind and origin> cannot run: <problem>``.
    """
    return f"{origin.describe(kind, obj)} cannot run: {problem}"


def consumer_class_problem(obj: Any) -> str | None:
    """What is wrong with ``obj`` as a consumer class, with the fix; None when nothing is.

    A topic left empty on the class may still be set by ``__init__``: that is
    checked by :func:`consumer_problem` once the consumer exists, unless the
    class keeps :class:`~moksha.hub.api.Consumer`'s ``__init__``.
    """
    if not isinstance(obj, type):
        return (
            f"{obj!r} is a {type(obj).__name__}, not a class; point the entry point at a "
            "subclass of moksha.hub.api.Consumer"
        )
    name = obj.__qualname__
    if issubclass(obj, Producer):
        base = "PollingProducer" if issubclass(obj, PollingProducer) else "Producer"
        return (
            f"{name} is a {base}, not a Consumer; register it on moksha.producer "
            "(or pass it in producers=[...]) instead"
        )
    if not issubclass(obj, Consumer):
        return (
            f"{name} does not subclass moksha.hub.api.Consumer; write "
            f"`class {name}(Consumer)` with a topic and a consume(self, message) method"
        )
    if obj.consume is Consumer.consume:
        return f"{name} does not define consume(self, message); add that method"
    if (problem := _init_problem(obj)) is not None:
        return problem
    if isinstance(inspect.getattr_static(obj, "topic"), property):
        return None  # computed per instance: checked once the consumer exists
    topic_problem = _topic_problem(name, obj.topic)
    if topic_problem is None and not topic_of_class(obj) and obj.__init__ is Consumer.__init__:
        return _no_topic(name)
    return topic_problem


def _init_problem(cls: type) -> str | None:
    """Whether ``cls(hub)`` can be called: the hub instantiates plugins with itself."""
    try:
        signature = inspect.signature(inspect.getattr_static(cls, "__init__"))
    except (TypeError, ValueError):
        return None  # a builtin or C signature: nothing to say
    try:
        signature.bind(None, None)  # self, hub
    except TypeError:
        name = cls.__qualname__
        return (
            f"{name}.__init__{signature} cannot take the hub; write "
            "def __init__(self, hub) and call super().__init__(hub)"
        )
    return None


def consumer_problem(consumer: Consumer) -> str | None:
    """What is wrong with a consumer once its ``__init__`` ran (its topic), or None."""
    name = type(consumer).__qualname__
    problem = _topic_problem(name, consumer.topic)
    if problem is None and not consumer.topics:
        return _no_topic(name)
    return problem


def topic_of_class(cls: type[Consumer]) -> list[str]:
    """The patterns set on the class itself (``__init__`` may set more)."""
    topic = cls.topic
    if isinstance(topic, str):
        return [topic] if topic else []
    if isinstance(topic, list | tuple):
        return [item for item in topic if isinstance(item, str) and item]
    return []


def _no_topic(name: str) -> str:
    return (
        f"{name} has no topic, so it would receive nothing; set topic = "
        "'org.example.#' (a pattern or a list of them) on the class or in __init__"
    )


def _topic_problem(name: str, topic: Any) -> str | None:
    items = [topic] if isinstance(topic, str) else topic
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        return (
            f"{name}.topic is {topic!r}; it must be a pattern such as 'org.example.#' "
            "or a list of patterns"
        )
    return None


def producer_class_problem(obj: Any) -> str | None:
    """What is wrong with ``obj`` as a producer class, with the fix; None when nothing is."""
    if not isinstance(obj, type):
        return (
            f"{obj!r} is a {type(obj).__name__}, not a class; point the entry point at a "
            "subclass of moksha.hub.api.Producer or PollingProducer"
        )
    name = obj.__qualname__
    if issubclass(obj, Consumer):
        return (
            f"{name} is a Consumer, not a Producer; register it on moksha.consumer "
            "(or pass it in consumers=[...]) instead"
        )
    if not issubclass(obj, Producer):
        return (
            f"{name} does not subclass moksha.hub.api.Producer; write "
            f"`class {name}(PollingProducer)` with a frequency and a poll(self) method, "
            f"or `class {name}(Producer)`"
        )
    if (problem := _init_problem(obj)) is not None:
        return problem
    if not issubclass(obj, PollingProducer):
        return None
    if obj.poll is PollingProducer.poll:
        return f"{name} does not define poll(self); add that method"
    if isinstance(inspect.getattr_static(obj, "frequency"), property):
        return None  # computed per instance: checked once the producer exists
    if obj.frequency is None and obj.__init__ is not Producer.__init__:
        return None  # its __init__ may set it: checked once it ran
    return _frequency_problem(name, obj.frequency)


def producer_problem(producer: Producer) -> str | None:
    """What is wrong with a producer once its ``__init__`` ran (its frequency), or None."""
    if not isinstance(producer, PollingProducer):
        return None
    return _frequency_problem(type(producer).__qualname__, producer.frequency)


def _frequency_problem(name: str, frequency: Any) -> str | None:
    fix = "set frequency = 60 (seconds) or a datetime.timedelta on the class; 0 polls back to back"
    if frequency is None:
        return f"{name} has no frequency; {fix}"
    valid_type = isinstance(frequency, int | float | timedelta) and not isinstance(frequency, bool)
    seconds = frequency.total_seconds() if isinstance(frequency, timedelta) else frequency
    if not valid_type or seconds < 0:
        return f"{name}.frequency is {frequency!r}; {fix}"
    return None


_CHECKS: dict[str, tuple[str, Callable[[Any], str | None]]] = {
    **{group: ("consumer", consumer_class_problem) for group in CONSUMER_GROUPS},
    **{group: ("producer", producer_class_problem) for group in PRODUCER_GROUPS},
}


def plugin_problem(plugin: Plugin) -> str | None:
    """The sentence for an entry point that cannot run, or None (what ``moksha list`` shows).

    Only consumer and producer groups are checked beyond importing.
    """
    kind, check = _CHECKS.get(plugin.group, (plugin.group.removeprefix("moksha."), _nothing))
    origin = Origin(plugin.group, plugin.name, plugin.value, plugin.distribution)
    if plugin.error is not None:
        problem = f"it cannot be imported ({plugin.error}); {IMPORT_FIX}"
        return rejection(origin, kind, plugin.value, problem)
    found = check(plugin.obj)
    return None if found is None else rejection(origin, kind, plugin.obj, found)


def _nothing(obj: Any) -> None:
    return None


def checked_plugins(groups: Sequence[str]) -> list[tuple[Any, Origin]]:
    """The classes on ``groups`` that pass the class checks, each once, with their origin.

    Every entry point that fails (import, base class, frequency, ...) is
    logged as one ERROR and left out.
    """
    found: list[tuple[Any, Origin]] = []
    seen: set[int] = set()
    for plugin in iter_plugins(groups):
        if (sentence := plugin_problem(plugin)) is not None:
            log.error("%s", sentence)
        elif id(plugin.obj) not in seen:  # one class on two entry points runs once
            seen.add(id(plugin.obj))
            origin = Origin(plugin.group, plugin.name, plugin.value, plugin.distribution)
            found.append((plugin.obj, origin))
    return found
