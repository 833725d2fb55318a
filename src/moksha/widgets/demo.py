"""Demo producers: real data on the bus from the first second, for the default dashboard.

``moksha start`` runs them unless ``moksha.dashboard.demo = false``:

``SystemStats`` → ``moksha.demo.system``, every second::

    {"host": "laptop", "load1": 0.42, "load5": 0.37, "load15": 0.30,
     "memory_total_bytes": 16467628032, "memory_available_bytes": 9316028416,
     "memory_used_percent": 43.4,
     "net_rx_bytes_per_s": 1520.0, "net_tx_bytes_per_s": 880.5}

(the network rates are absent from the first message: a rate needs two
readings; fields whose source is missing — no ``/proc`` — are left out.)

``Counter`` → ``moksha.demo.counter``, every second: ``{"count": 1}``, 2, 3, ...

The parsers are plain functions of the files' text, so they are tested
without a ``/proc``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moksha.hub.api import PollingProducer

if TYPE_CHECKING:
    from moksha.hub.hub import MokshaHub

__all__ = [
    "COUNTER_TOPIC",
    "SYSTEM_TOPIC",
    "Counter",
    "SystemStats",
    "parse_loadavg",
    "parse_meminfo",
    "parse_net_dev",
]

log = logging.getLogger("moksha.widgets.demo")

SYSTEM_TOPIC = "moksha.demo.system"
COUNTER_TOPIC = "moksha.demo.counter"


def parse_loadavg(text: str) -> dict[str, float]:
    """``/proc/loadavg`` → ``{"load1", "load5", "load15"}``.

    Raises:
        ValueError: the text is not in that format.
    """
    load1, load5, load15 = (float(v) for v in text.split()[:3])
    return {"load1": load1, "load5": load5, "load15": load15}


def parse_meminfo(text: str) -> dict[str, float]:
    """``/proc/meminfo`` → total and available bytes and the percentage in use.

    Raises:
        ValueError: ``MemTotal`` or ``MemAvailable`` is missing or not a number.
    """
    kib: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            kib[name.strip()] = int(fields[0])
    try:
        total, available = kib["MemTotal"] * 1024, kib["MemAvailable"] * 1024
    except KeyError as exc:
        raise ValueError(f"no {exc.args[0]} in meminfo") from exc
    used = 100.0 * (total - available) / total if total else 0.0
    return {
        "memory_total_bytes": total,
        "memory_available_bytes": available,
        "memory_used_percent": round(used, 1),
    }


def parse_net_dev(text: str) -> tuple[int, int]:
    """``/proc/net/dev`` → bytes received and sent, summed over the non-loopback interfaces.

    Raises:
        ValueError: a line is not in that format.
    """
    received = sent = 0
    for line in text.splitlines()[2:]:  # two header lines
        name, _, counters = line.partition(":")
        if name.strip() == "lo" or not counters.strip():
            continue
        fields = counters.split()
        received += int(fields[0])
        sent += int(fields[8])
    return received, sent


class SystemStats(PollingProducer):
    """This machine's load, memory and network throughput, every second.

    Attributes:
        proc: where ``/proc`` is (a test points it at a folder of sample files).
    """

    frequency = 1.0
    now = True
    topic = SYSTEM_TOPIC
    proc = Path("/proc")

    def __init__(self, hub: MokshaHub) -> None:
        super().__init__(hub)
        self.host = socket.gethostname()
        self._last_net: tuple[float, int, int] | None = None
        self._missing: set[str] = set()  # sources already reported missing, to log once

    def poll(self) -> None:
        """Read the counters and publish them on :data:`SYSTEM_TOPIC`."""
        self.send_message(self.topic, self.read())

    def read(self) -> dict[str, Any]:
        """One reading: whatever of load, memory and network this machine offers."""
        stats: dict[str, Any] = {"host": self.host}
        load = self._read("loadavg", parse_loadavg)
        if load is None and hasattr(os, "getloadavg"):
            load = dict(zip(("load1", "load5", "load15"), os.getloadavg(), strict=True))
        stats.update(load or {})
        stats.update(self._read("meminfo", parse_meminfo) or {})
        net = self._read("net/dev", parse_net_dev)
        if net is not None:
            stats.update(self._rates(time.monotonic(), *net))
        return stats

    def _read(self, name: str, parse: Any) -> Any:
        try:
            return parse((self.proc / name).read_text())
        except (OSError, ValueError, IndexError) as exc:
            if name not in self._missing:
                self._missing.add(name)
                log.info("demo: no %s (%s); its fields are left out", self.proc / name, exc)
            return None

    def _rates(self, now: float, received: int, sent: int) -> dict[str, float]:
        last, self._last_net = self._last_net, (now, received, sent)
        if last is None or now <= last[0]:
            return {}
        elapsed = now - last[0]
        # Counters restart (an interface went away): report 0, not a negative rate.
        return {
            "net_rx_bytes_per_s": round(max(0, received - last[1]) / elapsed, 1),
            "net_tx_bytes_per_s": round(max(0, sent - last[2]) / elapsed, 1),
        }


class Counter(PollingProducer):
    """A running count, every second: ``{"count": 1}``, ``{"count": 2}``, ..."""

    frequency = 1.0
    now = True
    topic = COUNTER_TOPIC

    def __init__(self, hub: MokshaHub) -> None:
        super().__init__(hub)
        self.count = 0

    def poll(self) -> None:
        """Publish the next count on :data:`COUNTER_TOPIC`."""
        self.count += 1
        self.send_message(self.topic, {"count": self.count})
