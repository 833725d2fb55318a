"""The operations files Moksha ships are in the package, and say what the docs say."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DOCS = Path(__file__).parent.parent / "docs" / "operations.md"


def test_the_systemd_units_run_moksha_and_stop_it_with_sigterm():
    data = files("moksha").joinpath("data")
    hub = data.joinpath("moksha-hub.service").read_text()
    start = data.joinpath("moksha-start.service").read_text()
    assert "ExecStart=/opt/moksha/venv/bin/moksha hub " in hub
    assert "ExecStart=/opt/moksha/venv/bin/moksha start " in start
    for unit in (hub, start):
        assert "KillSignal=SIGTERM" in unit
        assert "[Install]" in unit


def test_the_nginx_example_upgrades_websockets_and_does_not_buffer_events():
    conf = files("moksha").joinpath("data/nginx-moksha.conf").read_text()
    ws = conf[conf.index("location = /livesocket/ws") :]
    assert "proxy_set_header Upgrade $http_upgrade;" in ws.split("}")[0]
    sse = conf[conf.index("location = /livesocket/sse") :]
    assert "proxy_buffering off;" in sse.split("}")[0]


def test_the_operations_guide_names_the_files_that_exist():
    text = DOCS.read_text()
    for name in ("moksha-hub.service", "moksha-start.service", "nginx-moksha.conf"):
        assert name in text
        assert files("moksha").joinpath("data", name).is_file()
