"""The config loader under hypothesis: a Config, or a ConfigError naming the key or file.

The same properties run for longer under atheris: ``python benchmarks/fuzz.py config_ini``
(and ``config_value``).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fuzz_targets import config_ini, config_value
from moksha.config import KEYS, load_config
from moksha.errors import ConfigError

PREFETCH = next(i for i, key in enumerate(KEYS) if key.name == "amqp_prefetch")

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = st.sampled_from([key.name for key in KEYS] + ["here", "x", "moksha.app_db.a.url", ""])
LINES = st.one_of(
    st.builds(lambda k, v: f"{k} = {v}", NAMES, st.text(max_size=20)),
    st.sampled_from(["[app:main]", "[DEFAULT]", "[moksha]", "[app:notes]", "[", "%(here)s", ""]),
    st.builds(lambda v: f"sqlalchemy.url = {v}", st.text(max_size=20)),
    st.text(max_size=30),
)


@FUZZ
@given(st.lists(LINES, max_size=12))
@example(["[app:main]", "amqp_prefetch = %(nope)s"])
@example(["[app:notes]", "sqlalchemy.url = %"])
@example(["[app:main]", "moksha.workers_per_consumer = 0"])
def test_ini_files_shaped_like_ini_files(lines: list[str]) -> None:
    config_ini("\n".join(lines).encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.binary(max_size=300))
@example(b"\xff\xfe[app:main]\n")
def test_any_bytes_as_the_ini_file(data: bytes) -> None:
    config_ini(data)


@FUZZ
@given(st.integers(0, len(KEYS) - 1), st.text(max_size=30))
@example(0, "\0")
@example(PREFETCH, "\x1f117")  # found by atheris: ValueError from int()
@example(PREFETCH, "\u0661\u0662")  # Arabic-Indic digits: \\d matches them
def test_any_text_as_any_value(index: int, value: str) -> None:
    config_value(bytes([index]) + value.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("value", ["\x1f117", "117\x1c", "\u0661\u0662"])
def test_a_number_with_a_control_character_or_foreign_digits_is_refused_naming_the_key(
    value: str,
) -> None:
    # Regression: atheris found "\x1f117" raising ValueError instead of ConfigError.
    with pytest.raises(ConfigError, match=r"amqp_prefetch \(from environment .*a whole number"):
        load_config(environ={"MOKSHA_AMQP_PREFETCH": value}, search=False)
    assert (
        load_config(environ={"MOKSHA_AMQP_PREFETCH": " 117\n"}, search=False).amqp_prefetch == 117
    )
