"""ZeroMQ frames and subscription prefixes, without sockets."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moksha.hub.backends.zeromq_wire import (
    MalformedMessage,
    decode_frames,
    encode_frames,
    loose_match,
    reaches,
    subscription_prefix,
)
from moksha.message import Message
from moksha.topics import matches


@pytest.mark.parametrize("payload", [None, b"raw \x00\xff bytes"])
def test_a_message_survives_encoding_with_the_metadata_frame(payload):
    sent = Message("a.b", {"x": [1, "é"]}, headers={"k": "v"}, payload=payload)
    got = decode_frames(encode_frames(sent, metadata=True))
    assert (got.topic, got.id, got.timestamp_s, got.headers) == (
        sent.topic,
        sent.id,
        sent.timestamp_s,
        sent.headers,
    )
    assert got.payload == sent.payload


def test_by_default_a_message_is_the_originals_two_frames():
    sent = Message("a.b", {"x": "é"}, headers={"k": "v"})
    assert encode_frames(sent) == [b"a.b", sent.payload]
    assert decode_frames(encode_frames(sent)).body == {"x": "é"}


def test_an_original_two_frame_message_gets_an_id_and_the_time_of_arrival():
    message = decode_frames([b"org.x.y", b'{"a": 1}'])
    assert (message.topic, message.body, message.headers) == ("org.x.y", {"a": 1}, {})
    assert message.id
    assert abs(message.timestamp_s - time.time()) < 5


def test_meta_may_omit_fields_and_carry_whitespace():
    message = decode_frames([b"t", b"1", b' {"headers": {"n": 2}} \n'])
    assert message.headers == {"n": "2"}
    assert message.id


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([b"t"], "1 frame(s)"),
        ([b"t", b"1", b"{}", b"extra"], "4 frame(s)"),
        ([b"\xff", b"1"], "not UTF-8"),
        ([b"t", b"1", b"{not json"], "not JSON"),
        ([b"t", b"1", b"{} trailing"], "not JSON"),
        ([b"t", b"1", b"\xff"], "not JSON"),
        ([b"t", b"1", b"[]"], "not {"),
        ([b"t", b"1", b'{"headers": ["a"]}'], "not {"),
        ([b"t", b"1", b'{"timestamp": "now"}'], "not {"),
        ([b"t", b"1", b'{"timestamp": true}'], "not {"),
        ([b"t", b"1", b'{"id": 5}'], "not {"),
    ],
)
def test_anything_else_is_malformed(frames, reason):
    with pytest.raises(MalformedMessage, match=reason.replace("(", r"\(").replace(")", r"\)")):
        decode_frames(frames)


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("a.b", b"a.b"),
        ("a.b.*", b"a.b."),
        ("a.#", b"a"),  # "a.#" matches "a" itself
        ("a.#.b", b"a"),
        ("a.*.#", b"a."),
        ("#", b""),
        ("*.a", b""),
        ("a.#x.#", b"a.#x"),  # "#x" is a literal word
    ],
)
def test_the_subscription_prefix_of_a_pattern(pattern, prefix):
    assert subscription_prefix(pattern) == prefix


_words = st.lists(st.sampled_from(["a", "b", "ab"]), min_size=1, max_size=4)
_pattern_words = st.lists(st.sampled_from(["a", "b", "ab", "*", "#"]), min_size=1, max_size=4)


@given(_pattern_words, _words)
def test_the_prefix_lets_through_every_topic_the_pattern_matches(pattern_words, topic_words):
    pattern, topic = ".".join(pattern_words), ".".join(topic_words)
    if matches(pattern, topic):
        assert topic.encode().startswith(subscription_prefix(pattern))


def test_loose_matching_is_string_prefix_matching():
    assert loose_match("a.b", "a.b")
    assert loose_match("a.b", "a.b.c")
    assert loose_match("a.b", "a.bc")
    assert not loose_match("a.b", "a")


@pytest.mark.parametrize(
    ("bound", "target", "expected"),
    [
        ("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5555", True),
        ("tcp://0.0.0.0:5555", "tcp://127.0.0.1:5555", True),
        ("tcp://0.0.0.0:5555", "tcp://localhost:5555", True),
        ("tcp://127.0.0.1:5555", "tcp://localhost:5555", True),
        ("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556", False),
        ("tcp://192.0.2.7:5555", "tcp://127.0.0.1:5555", False),
        ("ipc:///tmp/moksha", "ipc:///tmp/moksha", True),
        ("ipc:///tmp/moksha", "tcp://127.0.0.1:5555", False),
    ],
)
def test_which_connect_endpoints_reach_our_own_bound_socket(bound, target, expected):
    assert reaches(bound, target) is expected
