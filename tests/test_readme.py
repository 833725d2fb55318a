"""The README stays true: every configuration key is documented there."""

from __future__ import annotations

import re
from pathlib import Path

from moksha.config import KEYS, load_config, reference_table

README = Path(__file__).parent.parent / "README.md"


def test_every_config_key_is_in_the_readme_reference():
    text = README.read_text()
    missing = [key.name for key in KEYS if f"| `{key.name}` |" not in text]
    assert missing == [], f"add these keys to the README's reference table: {missing}"


def test_the_readme_reference_is_the_generated_table():
    assert reference_table() in README.read_text(), (
        "regenerate the README's reference table from moksha.config.reference_table()"
    )


def test_the_readme_gives_the_two_commands():
    text = README.read_text()
    assert "python -m pip install -e . && moksha start" in text
    assert "\nscripts/test\n" in text


def _blocks(language: str) -> list[str]:
    text = README.read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_widget_examples_run():
    [example] = [block for block in _blocks("python") if "class Greeting(Widget)" in block]
    namespace: dict[str, object] = {}
    exec(example, namespace)  # the README's own code, as a reader would paste it
    greeting = namespace["Greeting"]().render(name="Moksha")  # type: ignore[operator]
    assert "Hello, Moksha!" in greeting
    live = namespace["HelloWorldWidget"]().render()  # type: ignore[operator]
    assert "json.msg" in live


def test_the_dashboard_layout_example_is_valid(tmp_path):
    from moksha.widgets.dashboard import dashboard_grid

    [layout] = [block for block in _blocks("json") if '"widgets"' in block]
    path = tmp_path / "layout.json"
    path.write_text(layout)
    config = load_config(overrides={"moksha.dashboard.layout": str(path)}, environ={}, search=False)
    grid, _title = dashboard_grid(config)
    assert "moksha-hub-status" in str(grid.render())


def test_the_consumer_producer_and_hub_examples_run(capsys):
    blocks = _blocks("python")
    consumer = next(b for b in blocks if "class Thermometer(Consumer)" in b)
    producer = next(b for b in blocks if "class Clock(PollingProducer)" in b)
    plain_hub = next(b for b in blocks if "hub = CentralMokshaHub({}" in b)
    namespace: dict[str, object] = {}
    exec(consumer + producer + plain_hub, namespace)  # as a reader would paste them
    printed = capsys.readouterr().out
    assert "Thermometer" in printed and "Clock" in printed
