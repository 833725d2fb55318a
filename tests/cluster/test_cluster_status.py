"""A cluster's state where operators look: /ready, /metrics and the dashboard's hub card.

In a module of its own: Playwright's sync API keeps an event loop running for
the module's browser, where the other cluster tests run asyncio themselves.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from cluster_nodes import cluster

from support import TIMEOUT


def test_ready_metrics_and_the_dashboard_show_the_cluster(tmp_path: Path, browser: Any) -> None:
    with cluster(tmp_path, **{"moksha.dashboard.demo": "true"}) as made:
        a, b = made.start(2)
        # Each node reads the others at its heartbeat (every TTL/3 = 0.5 s): a bounded poll.
        deadline = time.monotonic() + TIMEOUT
        ready: dict[str, Any] = {}
        while time.monotonic() < deadline and len(ready.get("cluster", {}).get("nodes", [])) < 2:
            ready = httpx.get(f"{a.url}/ready", timeout=TIMEOUT).json()
            time.sleep(0.1)
        assert ready["ready"] is True
        assert f"-{a.process.pid}-" in ready["cluster"]["node"]
        assert len(ready["cluster"]["nodes"]) == 2
        assert "producer:moksha.widgets.demo.Counter" in ready["cluster"]["leaders"]

        metrics = httpx.get(f"{a.url}/metrics", timeout=TIMEOUT).text
        assert "moksha_cluster_nodes 2.0" in metrics
        assert "moksha_cluster_store_up 1.0" in metrics
        assert 'moksha_cluster_leader{lock="producer:moksha.widgets.demo.Counter"' in metrics

        page = browser.new_page()
        try:
            page.goto(f"{b.url}/")
            items = page.locator("moksha-hub-status .moksha-cluster li")
            items.nth(1).wait_for(timeout=TIMEOUT * 1000)
            texts = items.all_inner_texts()
        finally:
            page.close()
        assert len(texts) == 2
        assert "(this node)" in texts[0] and f"-{b.process.pid}-" in texts[0]
        assert any("leads" in text for text in texts)
