"""The dashboard page and the hub status JSON, over HTTP (httpx in-process, no server)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from moksha.errors import ConfigError
from moksha.pytest_plugin import HubHarness
from moksha.widgets.dashboard import dashboard_routes
from support import Inbox, consumer_of


async def get(hub: Any, path: str, config: dict[str, Any] | None = None) -> httpx.Response:
    app = Starlette(routes=dashboard_routes(hub, config or {}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://moksha.test") as client:
        return await client.get(path)


def elements(html: str) -> list[str]:
    """The Moksha elements of a page, in order."""
    return re.findall(r"<(moksha-[a-z-]+) id=", html)


async def test_the_dashboard_is_a_whole_page_with_its_resources_in_the_head(
    moksha_hub: HubHarness,
) -> None:
    response = await get(moksha_hub.start(), "/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    head = html[: html.index("</head>")]
    for tag in (
        '<link rel="stylesheet" href="/_moksha/static/widgets/moksha-widgets.css">',
        '<script src="/livesocket/moksha.js"></script>',
        '<script type="module" src="/_moksha/static/widgets/moksha-widgets.js"></script>',
    ):
        assert html.count(tag) == 1 and tag in head
    assert '<meta name="viewport"' in head  # readable on a phone
    assert elements(html) == [
        "moksha-grid",
        "moksha-chart",
        "moksha-hub-status",
        "moksha-chart",
        "moksha-chart",
        "moksha-feed",
        "moksha-inspector",
    ]
    assert 'topic="moksha.demo.system" fields="load1,load5,load15"' in html


async def test_without_the_demo_the_dashboard_shows_all_messages(
    moksha_hub: HubHarness,
) -> None:
    config = {"moksha.dashboard.demo": "false", "moksha.dashboard.title": "Sensors"}
    html = (await get(moksha_hub.start(), "/", config)).text
    assert "<title>Sensors</title>" in html
    assert elements(html) == ["moksha-grid", "moksha-feed", "moksha-hub-status", "moksha-inspector"]
    assert 'topic="#"' in html


@pytest.mark.parametrize("suffix", [".json", ".toml"])
async def test_a_layout_file_replaces_the_default(
    moksha_hub: HubHarness, tmp_path: Path, suffix: str
) -> None:
    layout = tmp_path / f"layout{suffix}"
    if suffix == ".json":
        layout.write_text(
            json.dumps(
                [
                    {"widget": "feed", "span": 2, "params": {"topic": "sensors.#"}},
                    {"widget": "chart", "params": {"topic": "sensors.t", "fields": "celsius"}},
                ]
            )
        )
    else:
        layout.write_text(
            'columns = 2\n[[widgets]]\nwidget = "feed"\nspan = 2\n'
            '[widgets.params]\ntopic = "sensors.#"\n'
            '[[widgets]]\nwidget = "chart"\n[widgets.params]\ntopic = "sensors.t"\n'
            'fields = "celsius"\n'
        )
    html = (await get(moksha_hub.start(), "/", {"moksha.dashboard.layout": str(layout)})).text
    assert elements(html) == ["moksha-grid", "moksha-feed", "moksha-chart"]
    assert 'topic="sensors.#"' in html and 'fields="celsius"' in html
    assert "--moksha-span: 2" in html


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ('[{"widget": "clock"}]', "cell 1: no widget is called 'clock'"),
        ('[{"widget": "chart", "params": {"topic": "t"}}]', "needs the param 'fields'"),
        ('[{"widget": "feed", "size": 2}]', "a cell has no size"),
        ('{"widgets": "feed"}', "must hold a list of cells"),
        ("[{", "cannot read the layout"),
    ],
)
def test_a_bad_layout_is_reported_at_start_naming_the_key(
    moksha_hub: HubHarness, tmp_path: Path, layout: str, message: str
) -> None:
    path = tmp_path / "layout.json"
    path.write_text(layout)
    with pytest.raises(ConfigError, match=r"moksha\.dashboard\.layout") as caught:
        dashboard_routes(moksha_hub.start(), {"moksha.dashboard.layout": str(path)})
    assert message in str(caught.value)


async def test_the_status_reports_consumers_without_resetting_their_counts(
    moksha_hub: HubHarness,
) -> None:
    inbox = Inbox()
    hub = moksha_hub.start(consumers=[consumer_of("sensors.#", inbox)])
    for n in range(3):
        await moksha_hub.asend("sensors.t", n)
    inbox.wait(3)

    async def mine() -> dict[str, Any]:
        status = (await get(hub, "/_moksha/hub/status")).json()
        [consumer] = [c for c in status["consumers"] if c["name"] == "TestConsumer"]
        return status | {"mine": consumer}

    # headcount_out counts a message once consume returned: poll (bounded) until all three did.
    for _ in range(250):
        first = await mine()
        if first["mine"]["headcount_out"] == 3:
            break
        await asyncio.sleep(0.02)
    second = await mine()

    assert first["mine"]["topic"] == ["sensors.#"]
    assert first["mine"]["headcount_in"] == 3 and first["mine"]["headcount_out"] == 3
    assert first["mine"]["backlog"] == 0 and first["mine"]["exceptions"] == 0
    assert second["mine"] == first["mine"]  # reading did not reset anything
    [backend] = first["backends"]
    assert backend["name"] == "memory" and backend["connected"] is True
    assert first["hub"]["state"] == "running"
    assert first["livesocket"] is None  # this hub serves no live socket


async def test_the_status_lists_producers(moksha_hub: HubHarness) -> None:
    from moksha.widgets.demo import Counter

    hub = moksha_hub.start(producers=[Counter])
    await moksha_hub.await_for("moksha.demo.counter")
    response = await get(hub, "/_moksha/hub/status")
    assert response.headers["cache-control"] == "no-store"
    [producer] = response.json()["producers"]
    assert producer["name"] == "Counter" and producer["frequency"] == 1.0
    assert producer["last_ran"] is not None and producer["exceptions"] == 0
