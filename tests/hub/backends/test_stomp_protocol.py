"""Tests for the sans-I/O STOMP 1.2 codec and client protocol: bytes in, frames out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moksha.errors import MessageError
from moksha.hub.backends.stomp_protocol import (
    HEARTBEAT,
    ClientProtocol,
    Frame,
    FrameParser,
    State,
    StompProtocolError,
    StompServerError,
    encode_frame,
)

ESCAPED_COMMANDS = [
    "SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK", "BEGIN", "COMMIT", "ABORT",
    "DISCONNECT", "MESSAGE", "RECEIPT", "ERROR",
]  # fmt: skip


def parse(data: bytes, **limits: int) -> list[Frame]:
    parser = FrameParser(**limits)
    parser.feed(data)
    return parser.events()


def parse_error(data: bytes, **limits: int) -> str:
    with pytest.raises(StompProtocolError) as info:
        parse(data, **limits)
    return str(info.value)


# Codec.


@pytest.mark.parametrize("command", ESCAPED_COMMANDS)
def test_round_trip_with_escaped_headers(command: str) -> None:
    frame = Frame(command, {"a:b": "line\nnext\r\\end", "plain": "x"}, b"")
    data = encode_frame(frame)
    assert b"a\\cb:line\\nnext\\r\\\\end\n" in data
    assert parse(data) == [frame]


@pytest.mark.parametrize("command", ["CONNECT", "STOMP", "CONNECTED"])
def test_handshake_frames_are_not_escaped(command: str) -> None:
    frame = Frame(command, {"login": "a\\b", "passcode": "x:y"})
    data = encode_frame(frame)
    assert data == command.encode() + b"\nlogin:a\\b\npasscode:x:y\n\n\0"
    assert parse(data) == [frame]


def test_handshake_header_with_newline_cannot_be_encoded() -> None:
    with pytest.raises(StompProtocolError, match="cannot be sent unescaped"):
        encode_frame(Frame("CONNECT", {"login": "a\nb"}))


def test_escape_false_writes_headers_raw() -> None:
    data = encode_frame(Frame("SEND", {"k": "a\\b"}), escape=False)
    assert data == b"SEND\nk:a\\b\n\n\0"


def test_body_with_nul_uses_content_length() -> None:
    frame = Frame("SEND", {"destination": "/q/a"}, b"a\0b\0")
    data = encode_frame(frame)
    assert b"content-length:4\n" in data
    assert parse(data) == [Frame("SEND", {"destination": "/q/a", "content-length": "4"}, b"a\0b\0")]


def test_wrong_content_length_is_refused_when_encoding() -> None:
    with pytest.raises(StompProtocolError, match="content-length '3' but its body is 2 bytes"):
        encode_frame(Frame("SEND", {"content-length": "3"}, b"ab"))


def test_unencodable_header_is_refused_when_encoding() -> None:
    with pytest.raises(StompProtocolError, match="cannot be encoded as UTF-8"):
        encode_frame(Frame("SEND", {"k": "\ud800"}))


def test_unknown_command_is_refused_when_encoding() -> None:
    with pytest.raises(StompProtocolError, match="unknown STOMP command 'HELLO'"):
        encode_frame(Frame("HELLO"))


def test_frame_fed_one_byte_at_a_time() -> None:
    frame = Frame("MESSAGE", {"destination": "/t/x", "content-length": "5"}, b"he\0lo")
    parser = FrameParser()
    for byte in encode_frame(frame):
        assert parser.events() == []
        parser.feed(bytes([byte]))
    assert parser.events() == [frame]


def test_two_frames_and_heartbeats_in_one_chunk() -> None:
    first, second = Frame("RECEIPT", {"receipt-id": "1"}), Frame("MESSAGE", {}, b"")
    parser = FrameParser()
    parser.feed(b"\n\r\n" + encode_frame(first) + HEARTBEAT + encode_frame(second) + b"\n")
    assert parser.events() == [first, second]
    assert parser.heartbeats_received == 4


def test_crlf_split_between_chunks_counts_one_heartbeat() -> None:
    parser = FrameParser()
    parser.feed(b"\r")
    parser.feed(b"\n")
    assert parser.heartbeats_received == 1


def test_crlf_line_endings() -> None:
    data = b"MESSAGE\r\ndestination:/t/x\r\nid:7\r\n\r\nbody\0"
    assert parse(data) == [Frame("MESSAGE", {"destination": "/t/x", "id": "7"}, b"body")]


def test_first_repeated_header_wins() -> None:
    [frame] = parse(b"MESSAGE\nfoo:first\nbar:b\nfoo:second\n\n\0")
    assert frame.headers == {"foo": "first", "bar": "b"}
    assert list(frame.headers) == ["foo", "bar"]


def test_body_without_content_length_ends_at_first_nul() -> None:
    assert parse(b"SEND\n\nabc\0") == [Frame("SEND", {}, b"abc")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"SEND\nk:a\\tb\n\n\0", "undefined escape '\\\\t'"),
        (b"SEND\nk:ab\\\n\n\0", "undefined escape '\\\\'"),
        (b"SEND\nnocolon\n\n\0", "malformed header line 'nocolon' in SEND frame"),
        (b"SEND\n:value\n\n\0", "malformed header line ':value'"),
        (b"SEND\ncontent-length:-1\n\n\0", "content-length '-1', which is not a non-negative"),
        (b"SEND\ncontent-length:abc\n\n\0", "content-length 'abc'"),
        (b"SEND\ncontent-length:2\n\nabc\0", "not followed by a NUL byte (found b'c')"),
        (b"HELLO\n\n\0", "unknown STOMP command 'HELLO'"),
        (b"SEND\nk:v\0\n\n", "NUL byte) before the blank line"),
        (b"SEND\nk:\xff\n\n\0", "not valid UTF-8"),
    ],
)
def test_malformed_frames_raise_clear_errors(data: bytes, message: str) -> None:
    assert message in parse_error(data)


def test_protocol_errors_are_message_errors() -> None:
    assert issubclass(StompProtocolError, MessageError)


def test_parser_refuses_input_after_an_error() -> None:
    parser = FrameParser()
    with pytest.raises(StompProtocolError):
        parser.feed(b"HELLO\n\n\0")
    with pytest.raises(StompProtocolError, match="stopped at an earlier error"):
        parser.feed(b"SEND\n\n\0")


def test_header_block_size_limit() -> None:
    assert "larger than max_header_size=32" in parse_error(
        b"SEND\nk:" + b"x" * 40, max_header_size=32
    )
    assert "larger than max_header_size=32" in parse_error(
        b"SEND\nk:" + b"x" * 40 + b"\n\n\0", max_header_size=32
    )


def test_body_size_limit() -> None:
    assert parse(b"SEND\n\n" + b"x" * 8 + b"\0", max_body_size=8)
    assert "larger than max_body_size=8" in parse_error(b"SEND\n\n" + b"x" * 9, max_body_size=8)
    assert "larger than max_body_size=8" in parse_error(
        b"SEND\ncontent-length:9\n\n", max_body_size=8
    )


def test_passcode_hidden_from_frame_repr() -> None:
    assert "s3cret" not in repr(Frame("CONNECT", {"passcode": "s3cret"}))


# Property: parse(encode(frame)) == frame, however the bytes are cut.

header_text = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=20)
header_names = header_text.filter(lambda name: name != "" and name != "content-length")


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    command = draw(st.sampled_from(ESCAPED_COMMANDS))
    headers = draw(st.dictionaries(header_names, header_text, max_size=5))
    body = draw(st.binary(max_size=200))
    if body:
        headers["content-length"] = str(len(body))
    return Frame(command, headers, body)


@given(frames())
def test_encode_then_parse_round_trips(frame: Frame) -> None:
    assert parse(encode_frame(frame)) == [frame]


@given(st.lists(frames(), min_size=1, max_size=4), st.data())
def test_round_trip_survives_arbitrary_splits(batch: list[Frame], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(frame) + HEARTBEAT for frame in batch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    parser = FrameParser()
    received: list[Frame] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        parser.feed(stream[start:end])
        received += parser.events()
    assert received == batch
    assert parser.heartbeats_received == len(batch)


# Client protocol.


@pytest.fixture
def protocol() -> ClientProtocol:
    """A client that has connected and received CONNECTED."""
    client = ClientProtocol(login="guest", passcode="hunter2", heartbeat=(5000, 20000))
    client.connect()
    client.data_to_send()
    client.receive_data(encode_frame(Frame("CONNECTED", {"version": "1.2"})))
    client.events_received()
    return client


def test_connect_frame() -> None:
    client = ClientProtocol(login="guest", passcode="hunter2")
    assert client.state is State.CONNECTING
    client.connect()
    [frame] = parse(client.data_to_send())
    assert frame == Frame(
        "CONNECT",
        {
            "accept-version": "1.2",
            "host": "/",
            "heart-beat": "10000,10000",
            "login": "guest",
            "passcode": "hunter2",
        },
    )
    assert client.data_to_send() == b""


def test_connect_without_credentials_and_twice() -> None:
    client = ClientProtocol(host="vhost", heartbeat=(0, 0))
    client.connect()
    [frame] = parse(client.data_to_send())
    assert frame.headers == {"accept-version": "1.2", "host": "vhost", "heart-beat": "0,0"}
    with pytest.raises(StompProtocolError, match="already called"):
        client.connect()


@pytest.mark.parametrize(
    ("ours", "theirs", "outgoing", "incoming"),
    [
        ((5000, 20000), "10000,1000", 5000, 20000),
        ((5000, 20000), "30000,30000", 30000, 30000),
        ((0, 20000), "10000,10000", 0, 20000),
        ((5000, 20000), "0,0", 0, 0),
        ((5000, 20000), None, 0, 0),
    ],
)
def test_connected_negotiates_heartbeats(
    ours: tuple[int, int], theirs: str | None, outgoing: int, incoming: int
) -> None:
    client = ClientProtocol(heartbeat=ours)
    client.connect()
    headers = {"version": "1.2", "session": "s1"}
    if theirs is not None:
        headers["heart-beat"] = theirs
    connected = Frame("CONNECTED", headers)
    client.receive_data(encode_frame(connected))
    assert client.state is State.CONNECTED
    assert client.events_received() == [connected]
    assert client.server_headers["session"] == "s1"
    assert (client.outgoing_heartbeat_ms, client.incoming_heartbeat_ms) == (outgoing, incoming)


def test_malformed_heartbeat_header_closes() -> None:
    client = ClientProtocol()
    client.connect()
    with pytest.raises(StompProtocolError, match="heart-beat header 'soon'"):
        client.receive_data(encode_frame(Frame("CONNECTED", {"heart-beat": "soon"})))
    assert client.state is State.CLOSED


def test_send_before_connected_raises() -> None:
    client = ClientProtocol()
    with pytest.raises(StompProtocolError, match="SEND frame while the connection is CONNECTING"):
        client.send("/queue/a", b"x")
    client.connect()
    with pytest.raises(StompProtocolError, match="wait for CONNECTED"):
        client.subscribe("/queue/a", id="0")
    with pytest.raises(StompProtocolError):
        client.send_heartbeat()


def test_subscribe_send_ack_frames(protocol: ClientProtocol) -> None:
    protocol.subscribe("/topic/a", id="0", ack="client", headers={"id": "ignored", "x": "1"})
    protocol.send("/queue/b", b"hi\0", headers={"content-type": "text/plain"})
    protocol.ack("m-1")
    protocol.nack("m-2")
    protocol.unsubscribe("0")
    protocol.send_heartbeat()
    data = protocol.data_to_send()
    assert data.endswith(b"\0" + HEARTBEAT)
    assert parse(data) == [
        Frame("SUBSCRIBE", {"destination": "/topic/a", "id": "0", "ack": "client", "x": "1"}),
        Frame(
            "SEND",
            {"destination": "/queue/b", "content-type": "text/plain", "content-length": "3"},
            b"hi\0",
        ),
        Frame("ACK", {"id": "m-1"}),
        Frame("NACK", {"id": "m-2"}),
        Frame("UNSUBSCRIBE", {"id": "0"}),
    ]


def test_subscription_bookkeeping(protocol: ClientProtocol) -> None:
    with pytest.raises(StompProtocolError, match="ack mode 'sometimes'"):
        protocol.subscribe("/topic/a", id="0", ack="sometimes")
    protocol.subscribe("/topic/a", id="0")
    with pytest.raises(StompProtocolError, match="already in use"):
        protocol.subscribe("/topic/b", id="0")
    with pytest.raises(StompProtocolError, match="no subscription with id '9'"):
        protocol.unsubscribe("9")


def test_message_events_and_ack_by_frame(protocol: ClientProtocol) -> None:
    message = Frame(
        "MESSAGE",
        {"destination": "/topic/a", "message-id": "1", "subscription": "0", "ack": "a-1"},
        b"payload",
    )
    protocol.receive_data(encode_frame(message) + HEARTBEAT + encode_frame(message))
    assert (
        protocol.events_received()
        == [Frame(message.command, {**message.headers, "content-length": "7"}, b"payload")] * 2
    )
    assert protocol.heartbeats_received == 1
    protocol.ack(message)
    assert parse(protocol.data_to_send()) == [Frame("ACK", {"id": "a-1"})]
    with pytest.raises(StompProtocolError, match="no ack header"):
        protocol.ack(Frame("MESSAGE", {"message-id": "2"}))


def test_error_frame_becomes_server_error(protocol: ClientProtocol) -> None:
    error = Frame("ERROR", {"message": "access refused"}, b"user guest may not read /q/a\n")
    protocol.receive_data(encode_frame(error) + encode_frame(Frame("MESSAGE")))
    [event] = protocol.events_received()
    assert event.command == "ERROR"
    assert protocol.state is State.CLOSED
    assert isinstance(protocol.error, StompServerError)
    assert isinstance(protocol.error, MessageError)
    assert protocol.error.message == "access refused"
    assert str(protocol.error) == (
        "the STOMP server reported an error: access refused\nuser guest may not read /q/a"
    )
    assert str(StompServerError(Frame("ERROR"))).endswith("(no message header)")


def test_pending_receipts_cleared_by_receipt(protocol: ClientProtocol) -> None:
    protocol.send("/queue/a", b"1", receipt="r1")
    protocol.subscribe("/queue/a", id="s", receipt="r2")
    assert protocol.pending_receipts == {"r1", "r2"}
    assert parse(protocol.data_to_send())[0].headers["receipt"] == "r1"
    with pytest.raises(StompProtocolError, match="'r1' is already pending"):
        protocol.send("/queue/a", b"2", receipt="r1")
    protocol.receive_data(encode_frame(Frame("RECEIPT", {"receipt-id": "r1"})))
    assert protocol.pending_receipts == {"r2"}
    assert [event.command for event in protocol.events_received()] == ["RECEIPT"]


def test_graceful_disconnect(protocol: ClientProtocol) -> None:
    protocol.disconnect(receipt="bye")
    assert protocol.state is State.DISCONNECTING
    assert parse(protocol.data_to_send()) == [Frame("DISCONNECT", {"receipt": "bye"})]
    with pytest.raises(StompProtocolError, match="while the connection is DISCONNECTING"):
        protocol.send("/queue/a", b"late")
    protocol.receive_data(encode_frame(Frame("RECEIPT", {"receipt-id": "bye"})))
    assert protocol.state is State.CLOSED
    assert protocol.pending_receipts == frozenset()
    protocol.receive_data(b"garbage after close is ignored")


def test_disconnect_without_receipt_closes_at_once(protocol: ClientProtocol) -> None:
    protocol.disconnect(receipt=None)
    assert protocol.state is State.CLOSED
    assert parse(protocol.data_to_send()) == [Frame("DISCONNECT")]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (Frame("CONNECTED"), "no CONNECT was pending"),
        (Frame("SEND", {"destination": "/q"}), "which only clients send"),
    ],
)
def test_unexpected_server_frames(protocol: ClientProtocol, frame: Frame, message: str) -> None:
    with pytest.raises(StompProtocolError, match=message):
        protocol.receive_data(encode_frame(frame))
    assert protocol.state is State.CLOSED


def test_message_before_connected_is_an_error() -> None:
    client = ClientProtocol()
    client.connect()
    with pytest.raises(StompProtocolError, match="MESSAGE before CONNECTED"):
        client.receive_data(encode_frame(Frame("MESSAGE")))


def test_max_frame_size_limits_incoming_bodies() -> None:
    client = ClientProtocol(max_frame_size=4)
    client.connect()
    with pytest.raises(StompProtocolError, match="max_body_size=4"):
        client.receive_data(b"CONNECTED\n\n12345")


def test_bad_heartbeat_setting() -> None:
    with pytest.raises(StompProtocolError, match="non-negative"):
        ClientProtocol(heartbeat=(-1, 0))


def test_passcode_never_in_repr(protocol: ClientProtocol) -> None:
    client = ClientProtocol(login="guest", passcode="hunter2")
    client.connect()
    assert "hunter2" in client.data_to_send().decode()  # it is sent...
    for thing in (client, protocol, Frame("CONNECT", {"passcode": "hunter2"})):
        assert "hunter2" not in repr(thing)  # ...but never shown
    assert "login='guest'" in repr(client)


def test_content_length_can_be_left_out_unless_the_body_needs_it() -> None:
    # RabbitMQ copies a SEND's content-length into the AMQP headers consumers see.
    plain = encode_frame(Frame("SEND", {"destination": "/q/a"}, b'{"a":1}'), content_length=False)
    assert plain == b'SEND\ndestination:/q/a\n\n{"a":1}\0'
    with_nul = encode_frame(Frame("SEND", {"destination": "/q/a"}, b"a\0b"), content_length=False)
    assert b"content-length:3\n" in with_nul
    assert parse(with_nul)[0].body == b"a\0b"


def test_send_without_content_length_and_transaction_frames(protocol: ClientProtocol) -> None:
    protocol.send("/topic/a", b"{}", content_length=False)
    protocol.begin("t1", receipt="r1")
    protocol.commit("t1")
    protocol.abort("t2")
    assert parse(protocol.data_to_send()) == [
        Frame("SEND", {"destination": "/topic/a"}, b"{}"),
        Frame("BEGIN", {"transaction": "t1", "receipt": "r1"}),
        Frame("COMMIT", {"transaction": "t1"}),
        Frame("ABORT", {"transaction": "t2"}),
    ]
    assert protocol.pending_receipts == {"r1"}
