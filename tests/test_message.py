"""The message envelope: dict-style access, ids, timestamps and the JSON codec."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from moksha.errors import MessageError, MokshaError
from moksha.message import Message, encode_body, new_message_id

# -- dict-style access (what original Moksha consumers do) ------------------


def test_dict_style_access() -> None:
    m = Message("org.example.event", {"n": 1}, {"h": "v"})
    assert m["topic"] == "org.example.event"
    assert m["body"] == {"n": 1}
    assert m["headers"] == {"h": "v"}
    assert m["id"] == m.id
    assert m["timestamp"] == m.timestamp
    assert m.get("body") == {"n": 1}
    assert m.get("nope", 1) == 1
    assert m.get("nope") is None
    assert "topic" in m
    assert "nope" not in m


@pytest.mark.parametrize("key", ["nope", "Topic", "_body", "payload", ""])
def test_unknown_key_raises_key_error(key: str) -> None:
    with pytest.raises(KeyError):
        Message("t", 1)[key]


def test_defaults() -> None:
    m = Message("t")
    assert m.body is None
    assert m.headers == {}
    assert m.payload == b"null"


def test_to_dict_is_json_ready() -> None:
    m = Message("t", {"a": [1, 2]}, {"k": "v"})
    d = json.loads(json.dumps(m.to_dict()))
    assert datetime.fromtimestamp(d.pop("timestamp"), UTC) == m.timestamp
    assert d == {"topic": "t", "body": {"a": [1, 2]}, "headers": {"k": "v"}, "id": m.id}


# -- ids ---------------------------------------------------------------------


def test_ids_are_unique_within_a_process() -> None:
    ids = {Message("t").id for _ in range(10_000)}
    ids.update(new_message_id() for _ in range(10_000))
    assert len(ids) == 20_000


def test_given_id_is_kept() -> None:
    assert Message("t", id="abc").id == "abc"


_PRINT_IDS = "from moksha.message import Message\nfor _ in range(1000): print(Message('t').id)"


def _ids_from_another_process() -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PRINT_IDS], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert len(out) == 1000
    return set(out)


def test_ids_are_unique_across_processes() -> None:
    first, second = _ids_from_another_process(), _ids_from_another_process()
    here = {Message("t").id for _ in range(1000)}
    assert len(first) == len(second) == 1000
    assert not first & second
    assert not (first | second) & here


# -- timestamps --------------------------------------------------------------


def test_timestamp_is_aware_utc_and_now() -> None:
    before = datetime.now(UTC)
    ts = Message("t").timestamp
    after = datetime.now(UTC)
    assert ts.tzinfo is not None
    assert ts.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= ts <= after + timedelta(seconds=1)


@pytest.mark.parametrize(
    "given",
    [
        datetime(2020, 5, 17, 12, 30, tzinfo=UTC),
        datetime(2020, 5, 17, 12, 30, tzinfo=UTC).timestamp(),
    ],
)
def test_given_timestamp_is_kept(given: datetime | float) -> None:
    assert Message("t", timestamp=given).timestamp == datetime(2020, 5, 17, 12, 30, tzinfo=UTC)


# -- the codec ---------------------------------------------------------------


def test_payload_is_utf8_json_of_the_body() -> None:
    body = {"name": "Zoë", "tags": ["ü", "日本"], "n": 1.5, "ok": True, "none": None}
    payload = Message("t", body).payload
    assert isinstance(payload, bytes)
    assert json.loads(payload.decode("utf-8")) == body


def test_payload_from_the_wire_is_decoded_on_first_access_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[object] = []
    real_loads = json.loads

    def counting_loads(s: Any, **kwargs: Any) -> Any:
        calls.append(s)
        return real_loads(s, **kwargs)

    monkeypatch.setattr(json, "loads", counting_loads)
    m = Message("t", payload=b'{"a": [1, 2]}')
    assert calls == []
    assert m.body == {"a": [1, 2]}
    assert m["body"] == {"a": [1, 2]}
    assert len(calls) == 1


def test_payload_from_the_wire_is_kept_as_it_came() -> None:
    # Not decoded and re-encoded: the bytes a wire backend forwards are the ones it got.
    assert Message("t", payload=b'{"a":  1}').payload == b'{"a":  1}'
    assert Message("t", payload='{"a":  1}').payload == b'{"a":  1}'


@pytest.mark.parametrize(
    ("payload", "body"),
    [
        (b"hello world", "hello world"),
        ("hello world", "hello world"),
        ("Zoë".encode(), "Zoë"),
        (b"{not json", "{not json"),
        (b"", ""),
        # Valid UTF-8 that is not JSON stays text, even though json.loads would guess UTF-16.
        (b"1\x00", "1\x00"),
    ],
)
def test_non_json_payload_passes_through_as_text(payload: bytes | str, body: str) -> None:
    assert Message("t", payload=payload).body == body


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(min_size=1, max_size=40))
@example(payload=b"\xff\xfe1\x00")  # UTF-16-LE "1" behind a BOM: not UTF-8, so not JSON here
@example(payload=b"\xfe\xff\x001")
def test_non_utf8_payload_passes_through_as_bytes(payload: bytes) -> None:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return  # only non-UTF-8 payloads are this test's business
    m = Message("t", payload=payload)
    assert m.body == payload
    assert m.payload == payload


def test_raw_gives_the_text() -> None:
    m = Message("t", {"a": "é"}, {"h": "v"})
    raw = m.raw()
    assert raw.body == '{"a":"é"}'
    assert json.loads(raw.body) == {"a": "é"}
    assert (raw.topic, raw.id, raw.headers) == (m.topic, m.id, m.headers)
    assert raw.timestamp == m.timestamp


def test_raw_of_a_wire_payload() -> None:
    assert Message("t", payload=b'{"a": 1}').raw().body == '{"a": 1}'
    assert Message("t", payload=b"\xff\x00").raw().body == b"\xff\x00"


@pytest.mark.parametrize(
    "body",
    [object(), {1, 2}, b"bytes", {"when": datetime(2020, 1, 1, tzinfo=UTC)}, [1, object()]],
    ids=["object", "set", "bytes", "datetime", "nested"],
)
def test_unserialisable_body_raises_message_error(body: Any) -> None:
    with pytest.raises(MessageError) as info:
        encode_body(body)
    text = str(info.value)
    assert "JSON" in text
    assert len(text.split()) >= 8  # a sentence that says what to send instead
    assert isinstance(info.value, MokshaError)
    with pytest.raises(MessageError):
        _ = Message("t", body).payload


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_not_json(number: float) -> None:
    # json.dumps would write NaN/Infinity, which no other JSON parser (browsers,
    # other brokers' clients) accepts.
    with pytest.raises(MessageError):
        encode_body({"x": number})


def test_headers_are_copied() -> None:
    headers = {"a": "1"}
    m = Message("t", None, headers)
    headers["a"] = "changed"
    headers["b"] = "new"
    assert m.headers == {"a": "1"}


# -- round trip --------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(value=json_values)
def test_body_survives_the_wire(value: Any) -> None:
    sent = Message("t", value)
    received = Message("t", payload=sent.payload)
    assert received.body == value
    assert type(received.body) is type(value)
