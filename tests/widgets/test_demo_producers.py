"""The demo producers: what they read from /proc, and what they put on the bus."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from moksha.pytest_plugin import HubHarness
from moksha.widgets.demo import (
    Counter,
    SystemStats,
    parse_loadavg,
    parse_meminfo,
    parse_net_dev,
)

# /proc/net/dev with its columns squeezed (the parser splits on any whitespace).
NET_DEV = """\
Inter-| Receive | Transmit
 face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo ...
    lo: 9999999 100 0 0 0 0 0 0 9999999 100 0 0 0 0 0 0
  eth0: 1000 10 0 0 0 0 0 0 300 3 0 0 0 0 0 0
 wlan0: 500 5 0 0 0 0 0 0 200 2 0 0 0 0 0 0
"""


MEMINFO = """\
MemTotal:       16000000 kB
MemFree:         1000000 kB
MemAvailable:   12000000 kB
Buffers:          100000 kB
"""


def test_loadavg_gives_the_three_averages() -> None:
    assert parse_loadavg("0.42 0.37 0.30 2/345 6789\n") == {
        "load1": 0.42,
        "load5": 0.37,
        "load15": 0.30,
    }


def test_meminfo_gives_bytes_and_the_share_in_use() -> None:
    assert parse_meminfo(MEMINFO) == {
        "memory_total_bytes": 16000000 * 1024,
        "memory_available_bytes": 12000000 * 1024,
        "memory_used_percent": 25.0,
    }


def test_meminfo_without_available_memory_is_refused() -> None:
    with pytest.raises(ValueError, match="MemAvailable"):
        parse_meminfo("MemTotal: 100 kB\n")


def test_net_dev_sums_every_interface_but_loopback() -> None:
    assert parse_net_dev(NET_DEV) == (1500, 500)


class FakeProc(SystemStats):
    """A machine whose /proc holds the samples above, with traffic growing by 1000 B each read."""

    proc: Path

    def read(self) -> dict[str, object]:
        text = NET_DEV.replace("eth0: 1000 ", f"eth0: {1000 + 1000 * self.reads} ")
        (self.proc / "net" / "dev").write_text(text)
        self.reads += 1
        return super().read()


def fake_proc(root: Path) -> type[FakeProc]:
    (root / "net").mkdir(parents=True)
    (root / "loadavg").write_text("1.50 1.00 0.50 1/100 42\n")
    (root / "meminfo").write_text(MEMINFO)
    return type("FakeProc", (FakeProc,), {"proc": root, "reads": 0})


def test_system_stats_publish_load_memory_and_then_network_rates(
    moksha_hub: HubHarness, tmp_path: Path
) -> None:
    moksha_hub.start(producers=[fake_proc(tmp_path)])
    first, second = (m.body for m in moksha_hub.wait_for("moksha.demo.system", count=2))
    assert first["load1"] == 1.5 and first["load15"] == 0.5
    assert first["memory_used_percent"] == 25.0
    assert "net_rx_bytes_per_s" not in first  # a rate needs two readings
    # About a second apart, eth0 received 1000 bytes more: roughly 1000 B/s.
    assert 500 < second["net_rx_bytes_per_s"] < 2000
    assert second["net_tx_bytes_per_s"] == 0
    assert first["host"]


def test_system_stats_of_this_machine(moksha_hub: HubHarness) -> None:
    moksha_hub.start(producers=[SystemStats])
    [message] = moksha_hub.wait_for("moksha.demo.system")
    if not Path("/proc/meminfo").exists():
        pytest.skip("this machine has no /proc")
    assert message.body["load1"] >= 0
    assert 0 < message.body["memory_used_percent"] < 100


def test_without_proc_the_stats_keep_what_they_can(
    moksha_hub: HubHarness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="moksha.widgets.demo")
    missing = type("NoProc", (SystemStats,), {"proc": tmp_path / "absent"})
    moksha_hub.start(producers=[missing])
    bodies = [m.body for m in moksha_hub.wait_for("moksha.demo.system", count=2)]
    for body in bodies:
        assert "memory_used_percent" not in body and "net_rx_bytes_per_s" not in body
        assert body["host"]
    # Said once per missing file, not every second.
    assert sum("no " in r.getMessage() and "meminfo" in r.getMessage() for r in caplog.records) == 1


def test_the_counter_counts_every_second(moksha_hub: HubHarness) -> None:
    moksha_hub.start(producers=[Counter])
    messages = moksha_hub.wait_for("moksha.demo.counter", count=2)
    assert [m.body for m in messages] == [{"count": 1}, {"count": 2}]
