"""The README stays true: every configuration key is documented there."""

from __future__ import annotations

from pathlib import Path

from moksha.config import KEYS, reference_table

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
