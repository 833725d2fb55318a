"""The frames the server sends parse back to what was meant, whatever the topic or body."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from moksha.livesocket.frames import ECHO_CHARS, encode_event, error_frame, recovered_frame

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=16,
)
# Every code point, lone surrogates included: a topic can hold anything a str can.
ANY_TEXT = st.text(st.characters(exclude_categories=()))


@settings(max_examples=500)
@given(topic=ANY_TEXT, body=JSON_VALUES, event_id=ANY_TEXT)
@example(topic='a"b\\c', body={"q": '"\\'}, event_id='1-"2"')
@example(topic="ünïcødé.🚀", body="日本語 \u2028 \x00", event_id="e-1")
@example(topic="\ud800", body=None, event_id="\udfff")
def test_encode_event_parses_to_the_same_topic_body_and_id(
    topic: str, body: Any, event_id: str
) -> None:
    body_json = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    text = encode_event(topic, body_json, event_id)
    assert json.loads(text) == {"topic": topic, "body": body, "id": event_id}
    text.encode()  # sendable as UTF-8 whatever the topic held


def test_an_event_frame_is_the_original_frame_plus_an_id() -> None:
    text = encode_event("org.example.event", '{"n": 1}', "e7-42")
    assert json.loads(text) == {"topic": "org.example.event", "body": {"n": 1}, "id": "e7-42"}


@given(error=ANY_TEXT, quoted=ANY_TEXT)
def test_error_frames_are_json_with_the_sentence_and_the_frame_cut_short(
    error: str, quoted: str
) -> None:
    parsed = json.loads(error_frame(error, quoted))
    assert parsed["topic"] == "__error__"
    assert parsed["body"]["error"] == error
    assert quoted.startswith(parsed["body"]["frame"].removesuffix("…"))
    assert len(parsed["body"]["frame"]) <= ECHO_CHARS + 1


def test_recovered_frame_says_whether_the_gap_was_covered() -> None:
    assert json.loads(recovered_frame("a.#", False)) == {
        "topic": "__recovered__",
        "body": {"pattern": "a.#", "recovered": False},
    }
