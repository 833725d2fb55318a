"""The soak and malformed-frame run of ``benchmarks/soak.py``, in its short, bounded mode.

The long run (1000 clients, 10 minutes, 10,000 bad frames) is in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


@pytest.mark.timeout(240)
def test_a_short_soak_with_reconnects_and_malformed_frames_keeps_the_server_healthy() -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--short", "--json"],
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert run.stdout.strip(), run.stderr[-2000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    soak, malformed = results["soak"], results["malformed"]

    assert soak["reconnect_rounds"] >= 3 and soak["published"] > 50
    assert soak["error_frames"] == 0, soak["error_examples"]
    assert soak["steady_clients_missing_messages"] == 0
    assert soak["fds_after"] <= soak["fds_before"]
    assert soak["rss_growth_after_warmup"] < 0.10, soak["rss_mib"]

    assert malformed["frames"] == 1100
    for kind, counts in malformed["per_class"].items():
        assert counts["sent"] == counts["error"] + counts["closed"], (kind, counts)
    assert malformed["probe_received"] == malformed["probe_sent"] > 0
    assert results["server_alive"]
    assert run.returncode == 0
