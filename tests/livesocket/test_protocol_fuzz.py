"""Client frames under hypothesis: a session answers anything with actions, never an exception.

The same property runs for longer under atheris: ``python benchmarks/fuzz.py livesocket``.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fuzz_targets import livesocket_frame

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
TOPICS = st.sampled_from(
    [
        "__topic_subscribe__",
        "__topic_unsubscribe__",
        "__auth__",
        "__error__",
        "__x__",
        "org.example.a",
        "org.private.a",
        "other",
        "",
        "#",
        "*.*",
    ]
) | st.text(max_size=30)
BODIES = (
    JSON
    | st.fixed_dictionaries({}, optional={"pattern": JSON | st.text(max_size=30), "since": JSON})
    | st.sampled_from(["#", "org.#", "a..b", "#.#.#.#.#", "eyJhbGciOiJIUzI1NiJ9.e30.x", "x" * 300])
)


@FUZZ
@given(st.binary(max_size=500))
@example(b"\xff")
@example(b"[" * 5000)
@example(b'{"topic": "__auth__", "body": "eyJ0eXAiOiJKV1QifQ.eyJ9.sig"}')
def test_any_bytes(data: bytes) -> None:
    livesocket_frame(data)


@FUZZ
@given(st.dictionaries(st.sampled_from(["topic", "body", "other"]), JSON, max_size=3))
def test_any_json_object(frame: dict[str, Any]) -> None:
    livesocket_frame(json.dumps(frame).encode())


@FUZZ
@given(TOPICS, BODIES)
def test_frames_shaped_like_the_protocol(topic: str, body: Any) -> None:
    livesocket_frame(json.dumps({"topic": topic, "body": body}).encode())
