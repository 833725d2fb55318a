"""The operations files Moksha ships are in the package, and say what the docs say."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import pytest

from moksha.config import load_config

DOCS = Path(__file__).parent.parent / "docs" / "operations.md"
README = Path(__file__).parent.parent / "README.md"


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


def test_the_cluster_files_balance_nodes_and_start_one_per_port():
    data = files("moksha").joinpath("data")
    conf = data.joinpath("nginx-moksha-cluster.conf").read_text()
    upstream = conf[conf.index("upstream moksha_cluster") :].split("}")[0]
    assert upstream.count("server ") >= 2
    assert "ip_hash" not in upstream and "sticky" not in upstream  # no sticky sessions
    ws = conf[conf.index("location = /livesocket/ws") :]
    assert "proxy_set_header Upgrade $http_upgrade;" in ws.split("}")[0]
    sse = conf[conf.index("location = /livesocket/sse") :]
    assert "proxy_buffering off;" in sse.split("}")[0]
    unit = data.joinpath("moksha-start@.service").read_text()
    assert "moksha start --host 0.0.0.0 --port %i " in unit
    assert "KillSignal=SIGTERM" in unit
    service = unit_settings("moksha-start@.service")  # each node writes its own directory
    assert service["WorkingDirectory"] == ["/var/lib/moksha/%i"]
    assert service["StateDirectory"] == ["moksha/%i"]
    scaling = (DOCS.parent / "scaling.md").read_text()
    for name in ("moksha-start@.service", "nginx-moksha-cluster.conf"):
        assert name in scaling


def test_the_operations_guide_names_the_files_that_exist():
    text = DOCS.read_text()
    for name in ("moksha-hub.service", "moksha-start.service", "nginx-moksha.conf"):
        assert name in text
        assert files("moksha").joinpath("data", name).is_file()


def unit_settings(name: str) -> dict[str, list[str]]:
    """The [Service] settings of a shipped unit, as systemd reads them (a key may repeat)."""
    settings: dict[str, list[str]] = {}
    section = None
    for line in files("moksha").joinpath("data", name).read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def sqlite_file(url: str) -> str:
    assert url.startswith("sqlite:///"), url
    return url.removeprefix("sqlite:///")


@pytest.mark.parametrize("unit", ["moksha-hub.service", "moksha-start.service"])
def test_what_moksha_writes_by_default_is_writable_under_the_units_protection(unit: str) -> None:
    service = unit_settings(unit)
    assert service["ProtectSystem"] == ["strict"]  # everything else is read-only
    writable = [Path("/var/lib") / d for d in service.get("StateDirectory", [])]
    writable += [Path("/run") / d for d in service.get("RuntimeDirectory", [])]
    writable += [Path(p) for value in service.get("ReadWritePaths", []) for p in value.split()]
    [workdir] = service["WorkingDirectory"]

    defaults = load_config(environ={}, search=False)
    written = {
        "feed_cache": sqlite_file(defaults.feed_cache),
        "feed.file": defaults.feed_file,
        "moksha.data_dir": defaults.data_dir + "/an-app.sqlite",
    }
    for key, path in written.items():
        where = (Path(workdir) / path).resolve()
        assert any(where.is_relative_to(base) for base in writable), (
            f"{unit}: the default of {key} writes {where}, outside {writable}"
        )
    # The monitoring socket the README and the guide suggest lives in the RuntimeDirectory.
    suggested = re.findall(r"ipc://(/\S+?\.sock)", README.read_text() + DOCS.read_text())
    assert suggested
    for path in suggested:
        assert Path(path).parent in writable, f"{unit}: {path} is not writable"
