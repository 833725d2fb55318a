"""The config loader under hypothesis: a Config, or a ConfigError naming the key or file.

The same properties run for longer under atheris: ``python benchmarks/fuzz.py config_ini``
(and ``config_value``).
"""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fuzz_targets import config_ini, config_value
from moksha.config import KEYS

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
def test_any_text_as_any_value(index: int, value: str) -> None:
    config_value(bytes([index]) + value.encode("utf-8", "surrogatepass"))
