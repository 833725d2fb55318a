"""The STOMP frame codec under hypothesis: bad bytes raise StompProtocolError, nothing else.

The same properties run for longer under atheris: ``python benchmarks/fuzz.py stomp``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fuzz_targets import stomp_stream
from moksha.hub.backends.stomp_frames import COMMANDS, Frame, FrameParser, encode_frame

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HEADER_TEXT = st.text(st.characters(exclude_characters="\0", exclude_categories=("Cs",)))
FRAMES = st.builds(
    Frame,
    command=st.sampled_from(sorted(COMMANDS - {"CONNECT", "STOMP", "CONNECTED"})),
    headers=st.dictionaries(
        HEADER_TEXT.filter(bool).filter(lambda name: name != "content-length"),
        HEADER_TEXT,
        max_size=4,
    ),
    body=st.binary(max_size=64),
)


@FUZZ
@given(st.binary(max_size=600))
@example(b"SEND\ncontent-length:5\n\nab\0cd\0")
@example(b"MESSAGE\nx:\\t\n\n\0")
@example(b"\r\n\r\nSEND\r\n\r\n\0")
def test_any_bytes(data: bytes) -> None:
    stomp_stream(data)


@FUZZ
@given(
    st.lists(FRAMES, max_size=4),
    st.lists(st.tuples(st.integers(0, 10_000), st.binary(min_size=1, max_size=3)), max_size=3),
)
def test_valid_streams_with_a_few_bytes_changed(frames: list[Frame], edits: list) -> None:
    data = bytearray(b"\n".join(encode_frame(frame) for frame in frames))
    for where, new in edits:  # near-valid input reaches deeper than random bytes
        at = where % (len(data) + 1)
        data[at : at + len(new)] = new
    stomp_stream(bytes(data))


@FUZZ
@given(FRAMES, st.integers(1, 50))
def test_every_frame_encodes_and_parses_back_however_the_bytes_are_cut(
    frame: Frame, step: int
) -> None:
    encoded = encode_frame(frame)
    parser = FrameParser()
    for at in range(0, len(encoded), step):
        parser.feed(encoded[at : at + step])
    [parsed] = parser.events()
    headers = {k: v for k, v in parsed.headers.items() if k != "content-length"}
    assert (parsed.command, headers, parsed.body) == (frame.command, frame.headers, frame.body)
