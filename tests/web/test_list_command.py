"""``moksha list`` shows widgets and apps: their entry point and the distribution giving them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from moksha.cli import main


def test_list_json_has_widgets_and_apps_with_entry_point_and_distribution(
    web_plugins: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["list", "--json"])  # the demo site has a broken app: exit 1, listed all the same
    rows = {(row["kind"], row["name"]): row for row in json.loads(capsys.readouterr().out)}
    greeting = rows[("widget", "greeting")]
    assert greeting["entry_point"] == "moksha.widget: greeting = web_demo_plugin:Greeting"
    assert greeting["distribution"] == "web-demo-plugin 0.1"
    hello = rows[("application", "hello")]
    assert hello["entry_point"] == "moksha.application: hello = web_demo_plugin:asgi_app"
    assert hello["distribution"] == "web-demo-plugin 0.1"
    assert rows[("wsgiapp", "legacy")]["distribution"] == "web-demo-plugin 0.1"
    # Moksha's own widgets are listed the same way.
    chart = rows[("widget", "chart")]
    assert chart["object"] == "moksha.widgets.builtin:ChartWidget"
    assert chart["distribution"].startswith("moksha ")


def test_list_table_has_widgets_and_apps(
    web_plugins: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    main(["list"])
    lines = capsys.readouterr().out.splitlines()
    assert any(
        re.search(r"widget .* greeting .* web_demo_plugin:Greeting .* web-demo-plugin 0\.1", line)
        for line in lines
    )
    assert any(
        re.search(r"application .* hello .* web_demo_plugin:asgi_app .* web-demo-plugin 0\.1", line)
        for line in lines
    )
    assert any(
        re.search(
            r"widget .* hub_status .* moksha\.widgets\.builtin:HubStatusWidget .* moksha ", line
        )
        for line in lines
    )


def test_list_shows_the_hub_attachments_moksha_installs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["list", "--json"])
    rows = {(row["kind"], row["name"]): row for row in json.loads(capsys.readouterr().out)}
    live = rows[("attachment", "livesocket")]
    assert live["object"] == "moksha.livesocket.attachment:LiveSocketAttachment.from_config"
    assert live["distribution"].startswith("moksha ")
    assert live["error"] is None
    assert ("attachment", "cluster") in rows
