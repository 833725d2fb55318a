"""Widgets by name: Moksha's own come from its ``moksha.widget`` entry points, as others' do."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import moksha.widgets
from moksha.feeds.widgets import FeedWidget as FeedEntriesWidget
from moksha.feeds.widgets import LiveFeedWidget
from moksha.widgets import (
    ChartWidget,
    FeedWidget,
    Grid,
    HubStatusWidget,
    InspectorWidget,
    LiveWidget,
    WidgetError,
    find_widget,
)
from moksha.widgets.registry import installed_widgets

BUILT_IN = {
    "chart": ChartWidget,
    "feed": FeedWidget,
    "feed_entries": FeedEntriesWidget,
    "grid": Grid,
    "hub_status": HubStatusWidget,
    "inspector": InspectorWidget,
    "live": LiveWidget,
    "live_feed_entries": LiveFeedWidget,
}


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    installed_widgets.cache_clear()  # read once per process: read again with what a test installs
    yield
    installed_widgets.cache_clear()


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_widgets_package_imports_nothing_of_the_feeds_package() -> None:
    package = Path(moksha.widgets.__file__).parent
    offenders = {
        path.name: found
        for path in package.glob("*.py")
        if (found := sorted(n for n in imported_modules(path) if n.startswith("moksha.feeds")))
    }
    assert offenders == {}


def test_mokshas_distribution_declares_every_built_in_widget() -> None:
    ours = {
        ep.name: ep.load()
        for ep in entry_points(group="moksha.widget")
        if ep.dist is not None and ep.dist.metadata["Name"] == "moksha"
    }
    assert ours == BUILT_IN


@pytest.mark.parametrize(("name", "cls"), sorted(BUILT_IN.items()))
def test_each_built_in_name_gives_its_widget(name: str, cls: type, fresh_registry: None) -> None:
    assert type(find_widget(name)) is cls


def test_another_packages_widget_replaces_mokshas_own_of_the_same_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None
) -> None:
    info = tmp_path / "charts_everywhere-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: charts-everywhere\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[moksha.widget]\nfeed = moksha.widgets.builtin:ChartWidget\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert type(find_widget("feed")) is ChartWidget
    assert type(find_widget("inspector")) is InspectorWidget  # the others stay Moksha's


def test_an_unknown_name_lists_the_installed_ones(fresh_registry: None) -> None:
    with pytest.raises(WidgetError) as raised:
        find_widget("nope")
    message = str(raised.value)
    assert message.startswith("no widget is called 'nope'; known widgets: ")
    assert set(BUILT_IN) <= set(message.partition("known widgets: ")[2].split(", "))
