"""The live-socket session, frame by frame, without sockets.

Each test feeds a :class:`Session` the text a client would send and checks the
actions a server would carry out: what it subscribes, publishes, replies and
whether it closes, with the close code a client would see.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moksha.livesocket.protocol import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_POLICY_VIOLATION,
    CLOSE_UNAUTHORIZED,
    Action,
    Close,
    LiveSocketPolicy,
    Publish,
    Reply,
    Session,
    Subscribe,
    Unsubscribe,
    make_token,
)

SECRET = "moksha-test-secret-0123456789-abcdef"
ACTIONS = (Subscribe, Unsubscribe, Publish, Reply, Close)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


def frame(topic: Any, body: Any = None) -> str:
    return json.dumps({"topic": topic, "body": body})


def subscribe(pattern: Any) -> str:
    return frame("__topic_subscribe__", pattern)


def errors(actions: list[Any]) -> list[str]:
    """The sentences of the error frames among ``actions`` (checked to be well-formed)."""
    found = []
    for action in actions:
        if isinstance(action, Reply):
            reply = json.loads(action.frame)
            assert reply["topic"] == "__error__"
            found.append(reply["body"]["error"])
    return found


def the_error(actions: list[Any]) -> str:
    """The one error sentence ``actions`` consist of."""
    assert len(actions) == 1, actions
    (error,) = errors(actions)
    return error


# -- subscribing and unsubscribing ----------------------------------------------


def test_the_original_subscribe_frame_subscribes() -> None:
    session = Session(LiveSocketPolicy())
    assert session.receive(subscribe("org.example.#")) == [Subscribe("org.example.#", None)]
    assert set(session.subscriptions) == {"org.example.#"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"pattern": "a.*", "since": "e1-41"}, Subscribe("a.*", "e1-41")),
        ({"pattern": "a.*"}, Subscribe("a.*", None)),
        ({"pattern": "a.*", "since": ""}, Subscribe("a.*", None)),
        ({"pattern": "a.*", "since": None, "extra": 1}, Subscribe("a.*", None)),
        ({"pattern": "a.*", "position": True}, Subscribe("a.*", None, position=True)),
        ({"pattern": "a.*", "since": "e1-4", "position": False}, Subscribe("a.*", "e1-4")),
    ],
)
def test_the_recovery_form_carries_the_last_id_seen(body: Any, expected: Subscribe) -> None:
    assert Session(LiveSocketPolicy()).receive(subscribe(body)) == [expected]


def test_subscribing_twice_to_a_pattern_changes_nothing() -> None:
    session = Session(LiveSocketPolicy())
    session.receive(subscribe("a.b"))
    assert session.receive(subscribe("a.b")) == []
    assert session.receive(subscribe({"pattern": "a.b", "since": "e-3"})) == []
    assert list(session.subscriptions) == ["a.b"]


def test_unsubscribe_ends_a_subscription_and_unknown_ones_are_no_ops() -> None:
    session = Session(LiveSocketPolicy())
    session.receive(subscribe("a.b"))
    assert session.receive(frame("__topic_unsubscribe__", "never.subscribed")) == []
    assert session.receive(frame("__topic_unsubscribe__", "a.b")) == [Unsubscribe("a.b")]
    assert session.receive(frame("__topic_unsubscribe__", {"pattern": "a.b"})) == []
    assert list(session.subscriptions) == []


def test_subscriptions_are_limited_per_connection() -> None:
    session = Session(LiveSocketPolicy(max_subscriptions=2))
    session.receive(subscribe("a"))
    session.receive(subscribe("b"))
    error = the_error(session.receive(subscribe("c")))
    assert "2 subscriptions" in error and "moksha.livesocket.max_subscriptions" in error
    assert set(session.subscriptions) == {"a", "b"}
    session.receive(frame("__topic_unsubscribe__", "a"))
    assert session.receive(subscribe("c")) == [Subscribe("c", None)]


# -- bad frames: an error frame, the connection goes on -----------------------------

BAD_FRAMES = [
    ("not JSON", "{topic: x}", "not JSON"),
    ("truncated JSON", '{"topic": "a"', "not JSON"),
    ("too deeply nested", "[" * 5000 + "]" * 5000, "not JSON"),
    ("huge integer", '{"topic": "a", "body": ' + "9" * 5000 + "}", "not JSON"),
    ("not UTF-8", b'{"topic": "a\xff"}', "not UTF-8"),
    ("a list", '["__topic_subscribe__", "a"]', 'string "topic"'),
    ("a string", '"hello"', 'string "topic"'),
    ("no topic", '{"body": "a.b"}', 'string "topic"'),
    ("a number topic", '{"topic": 7, "body": "a.b"}', 'string "topic"'),
    ("unknown control topic", frame("__topic_subscribe_all__", "a"), "unknown control topic"),
    ("bare underscores", frame("____", "a"), "unknown control topic"),
    ("pattern not a string", subscribe(5), "must be a string"),
    ("no pattern", subscribe(None), "must be a string"),
    ("pattern in the wrong key", subscribe({"topic": "a"}), "must be a string"),
    ("empty pattern", subscribe(""), "the pattern is empty"),
    ("since not a string", subscribe({"pattern": "a", "since": 41}), '"since" must be'),
    ("position not a boolean", subscribe({"pattern": "a", "position": "yes"}), '"position" must'),
    ("pattern too long", subscribe("a." * 200 + "b"), "longer than 255 bytes"),
    ("pattern of many #", subscribe("#.a.#.b.#"), "more than 2 '#' words"),
    ("lone surrogate pattern", '{"topic": "__topic_subscribe__", "body": "\\ud800"}', "Unicode"),
    ("unsubscribe a number", frame("__topic_unsubscribe__", 3), "must be the pattern"),
    ("auth without a token", frame("__auth__", {"token": "x"}), "token as its body"),
]


@pytest.mark.parametrize(
    ("data", "expected"), [c[1:] for c in BAD_FRAMES], ids=[c[0] for c in BAD_FRAMES]
)
def test_a_bad_frame_gets_an_error_frame_and_the_connection_goes_on(
    data: str | bytes, expected: str
) -> None:
    session = Session(LiveSocketPolicy())
    assert expected in the_error(session.receive(data))
    assert not session.closed
    assert session.receive(subscribe("still.works")) == [Subscribe("still.works", None)]


def test_an_error_frame_quotes_the_frame_it_refers_to_cut_short() -> None:
    data = "x" * 1000
    (reply,) = Session(LiveSocketPolicy()).receive(data)
    assert isinstance(reply, Reply)
    quoted = json.loads(reply.frame)["body"]["frame"]
    assert quoted.startswith("xxx") and len(quoted) < 250


# -- frames that close the connection ------------------------------------------------


@pytest.mark.parametrize(
    ("data", "closes"),
    [
        ("x" * 100, False),
        ("x" * 101, True),
        ("é" * 50, False),  # 100 bytes of UTF-8
        ("é" * 51, True),  # 51 characters, 102 bytes: bytes are what count
        ("€" * 34, True),  # 102 bytes
        (b"x" * 101, True),
    ],
)
def test_a_frame_over_max_frame_bytes_closes_with_1009(data: str | bytes, closes: bool) -> None:
    session = Session(LiveSocketPolicy(max_frame_bytes=100))
    actions = session.receive(data)
    if closes:
        assert actions == [Close(CLOSE_MESSAGE_TOO_BIG, "frame over 100 bytes")]
        assert session.receive(subscribe("a")) == []  # closed: nothing more happens
    else:
        assert not any(isinstance(a, Close) for a in actions)


def churn(session: Session, count: int) -> list[list[Action]]:
    """``count`` frames that each do something: subscribe and unsubscribe in turn."""
    frames = [
        subscribe("t") if i % 2 == 0 else frame("__topic_unsubscribe__", "t") for i in range(count)
    ]
    return [session.receive(f) for f in frames]


def test_the_rate_limit_warns_once_then_closes_a_client_that_keeps_going() -> None:
    clock = FakeClock()
    policy = LiveSocketPolicy(max_messages_per_second=5)
    session = Session(policy, now=clock)
    burst = int(policy.burst)
    assert all(len(actions) == 1 for actions in churn(session, burst))
    assert "too many messages" in the_error(session.receive(subscribe("over.1")))
    # Over budget: ignored silently, not subscribed, until the debt is a full burst.
    for i in range(burst - 1):
        assert session.receive(subscribe(f"ignored.{i}")) == []
    assert session.receive(subscribe("last")) == [
        Close(CLOSE_POLICY_VIOLATION, "over 5 messages per second")
    ]
    assert not any(p.startswith(("over", "ignored", "last")) for p in session.subscriptions)


def test_a_reconnecting_page_may_resubscribe_everything_at_once() -> None:
    policy = LiveSocketPolicy(max_messages_per_second=5, max_subscriptions=100)
    session = Session(policy, now=FakeClock())
    results = [session.receive(subscribe(f"p{i}")) for i in range(100)]
    assert all(r == [Subscribe(f"p{i}", None)] for i, r in enumerate(results))


def test_a_client_that_slows_down_after_the_warning_is_served_again() -> None:
    clock = FakeClock()
    policy = LiveSocketPolicy(max_messages_per_second=5)
    session = Session(policy, now=clock)
    churn(session, int(policy.burst))
    assert errors(session.receive(subscribe("over")))
    clock.t += 0.5  # 2.5 frames' worth: pays the one frame of debt, earns more than one
    assert session.receive(subscribe("ok")) == [Subscribe("ok", None)]
    # The warning is given again on the next overrun.
    assert errors(session.receive(subscribe("over.again")))


def test_a_client_at_the_rate_is_never_limited() -> None:
    clock = FakeClock()
    session = Session(LiveSocketPolicy(max_messages_per_second=5, max_subscriptions=500), now=clock)
    for i in range(300):
        clock.t += 1 / 5
        assert session.receive(subscribe(f"t{i}")) == [Subscribe(f"t{i}", None)]


# -- publishing ---------------------------------------------------------------------


def test_publishing_is_off_by_default_and_the_error_says_how_to_turn_it_on() -> None:
    error = the_error(Session(LiveSocketPolicy()).receive(frame("chat.room", {"text": "hi"})))
    assert error == (
        "publishing from the browser is off: set moksha.livesocket.publish_allow "
        "to the topics browsers may publish to"
    )


@pytest.mark.parametrize(
    ("topic", "allowed"),
    [("chat.room", True), ("chat.room.lobby", True), ("chat", True), ("admin.shutdown", False)],
)
def test_publish_allow_patterns_decide_what_a_client_may_publish(topic: str, allowed: bool) -> None:
    session = Session(LiveSocketPolicy(publish_allow=("chat.#",)))
    actions = session.receive(frame(topic, {"text": "hi"}))
    if allowed:
        assert actions == [Publish(topic, {"text": "hi"})]
    else:
        assert "moksha.livesocket.publish_allow" in the_error(actions)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (frame("chat.*", 1), "pattern"),
        (frame("chat.#", 1), "pattern"),
        (frame("", 1), "topic is empty"),
        (frame("chat." + "x" * 300, 1), "longer than 255 bytes"),
        ('{"topic": "chat.a", "body": "\\udc00"}', "not valid Unicode JSON"),
    ],
)
def test_a_publish_that_cannot_be_a_message_gets_an_error_frame(data: str, expected: str) -> None:
    session = Session(LiveSocketPolicy(publish_allow=("#",)))
    assert expected in the_error(session.receive(data))


def test_a_publish_without_body_publishes_null() -> None:
    session = Session(LiveSocketPolicy(publish_allow=("#",)))
    assert session.receive('{"topic": "a.b"}') == [Publish("a.b", None)]


def test_a_client_refused_publishing_again_and_again_is_closed() -> None:
    session = Session(LiveSocketPolicy())
    for _ in range(10):
        assert errors(session.receive(frame("chat.room", "hi")))
    assert session.receive(frame("chat.room", "hi")) == [
        Close(CLOSE_POLICY_VIOLATION, "publishing refused too many times")
    ]


# -- protected topics and tokens ------------------------------------------------------


def protected_policy(**kwargs: Any) -> LiveSocketPolicy:
    return LiveSocketPolicy(protected=("secret.#",), token_secret=SECRET, **kwargs)


def test_a_protected_pattern_needs_a_token_that_grants_it() -> None:
    session = Session(protected_policy())
    error = the_error(session.receive(subscribe("secret.plans")))
    assert "'secret.plans' is protected" in error and "__auth__" in error
    assert session.receive(frame("__auth__", make_token(SECRET, ["secret.#"], 60))) == []
    assert session.receive(subscribe("secret.plans")) == [Subscribe("secret.plans", None)]
    assert session.may_see("secret.plans")


@pytest.mark.parametrize(
    ("granted", "pattern", "subscribed"),
    [
        ("secret.#", "secret.#", True),
        ("secret.#", "secret.*.x", True),
        ("secret.a.#", "secret.a.b", True),
        ("secret.a.#", "secret.#", False),
        ("secret.a.*", "secret.a.#", False),
        ("other.#", "secret.a", False),
    ],
)
def test_a_token_grants_the_patterns_its_patterns_cover(
    granted: str, pattern: str, subscribed: bool
) -> None:
    session = Session(protected_policy(), token=make_token(SECRET, [granted], 60))
    actions = session.receive(subscribe(pattern))
    assert (actions == [Subscribe(pattern, None)]) is subscribed


def test_a_wide_subscription_is_allowed_but_protected_topics_are_filtered() -> None:
    session = Session(protected_policy(), token=make_token(SECRET, ["secret.a.#"], 60))
    assert session.receive(subscribe("#")) == [Subscribe("#", None)]
    assert session.may_see("public.news")
    assert session.may_see("secret.a.b")
    assert not session.may_see("secret.b")
    assert not Session(protected_policy()).may_see("secret.a.b")


def test_grants_lapse_when_the_token_expires_during_the_connection() -> None:
    wall = FakeClock(start=__import__("time").time())
    session = Session(protected_policy(), token=make_token(SECRET, ["secret.#"], 60), clock=wall)
    assert session.may_see("secret.a")
    wall.t += 61
    assert not session.may_see("secret.a")
    assert "protected" in the_error(session.receive(subscribe("secret.a")))


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (make_token(SECRET, ["secret.#"], -10), "token expired"),
        (make_token(SECRET + "-other", ["secret.#"], 60), "not signed with this server's secret"),
        ("not.a.token", "not a valid JWT"),
    ],
)
def test_a_bad_token_closes_with_4001_in_a_frame_or_the_query(token: str, reason: str) -> None:
    session = Session(protected_policy())
    (close,) = session.receive(frame("__auth__", token))
    assert close == Close(CLOSE_UNAUTHORIZED, close.reason) and reason in close.reason
    query = Session(protected_policy(), token=token)
    (close,) = query.receive(subscribe("public"))
    assert close.code == CLOSE_UNAUTHORIZED and reason in close.reason
    assert Session(protected_policy(), token=token).start() == [close]


def test_a_token_sent_to_a_server_without_a_secret_gets_an_error_frame() -> None:
    session = Session(LiveSocketPolicy())
    error = the_error(session.receive(frame("__auth__", make_token(SECRET, ["#"], 60))))
    assert "moksha.livesocket.token_secret" in error


def test_publishing_to_a_protected_topic_needs_a_grant_too() -> None:
    policy = protected_policy(publish_allow=("#",))
    assert "protected" in the_error(Session(policy).receive(frame("secret.a", 1)))
    granted = Session(policy, token=make_token(SECRET, ["secret.#"], 60))
    assert granted.receive(frame("secret.a", 1)) == [Publish("secret.a", 1)]


def test_tokens_and_secrets_appear_in_no_frame_reason_or_repr() -> None:
    good = make_token(SECRET, ["secret.#"], 60)
    foreign = make_token(SECRET + "-other", ["secret.#"], 60)
    policy = protected_policy()
    seen: list[str] = [repr(policy), str(policy)]
    session = Session(policy, token=good)
    for data in [
        frame("__auth__", foreign),
        frame("__auth__", {"token": good}),
        frame("__auth__", [good]),
        frame("__auth_me__", good),
    ]:
        fresh = Session(policy)
        for action in fresh.receive(data):
            seen.append(repr(action))
        seen.append(repr(fresh))
    seen.append(repr(session))
    seen.extend(repr(a) for a in Session(LiveSocketPolicy()).receive(frame("__auth__", good)))
    for text in seen:
        assert SECRET not in text
        assert good.split(".")[2] not in text and foreign.split(".")[2] not in text


def test_every_close_reason_fits_a_close_frame() -> None:
    closes = [
        *Session(LiveSocketPolicy(max_frame_bytes=999_999)).receive(b"x" * 1_000_000),
        *Session(protected_policy()).receive(frame("__auth__", "garbage")),
        *Session(protected_policy()).receive(frame("__auth__", make_token(SECRET, [], -1))),
    ]
    slow = LiveSocketPolicy(max_messages_per_second=0.0123456789, max_subscriptions=1)
    rated = Session(slow, now=FakeClock())
    for _ in range(3 * int(slow.burst)):
        closes.extend(a for a in rated.receive("{}") if isinstance(a, Close))
    refused = Session(LiveSocketPolicy())
    for _ in range(11):
        closes.extend(a for a in refused.receive(frame("a", 1)) if isinstance(a, Close))
    assert [type(c) for c in closes] == [Close] * 5
    for close in closes:
        assert len(close.reason.encode()) <= 123  # RFC 6455: the close frame's payload limit


# -- nothing a client sends makes receive raise ---------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
TOPICS = (
    st.sampled_from(
        ["__topic_subscribe__", "__topic_unsubscribe__", "__auth__", "__x__", "a.b", "#", ""]
    )
    | st.text()
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text() | st.binary(), max_size=8))
def test_arbitrary_text_only_ever_yields_actions(frames: list[str | bytes]) -> None:
    session = Session(protected_policy(publish_allow=("#",), max_frame_bytes=64))
    for data in frames:
        actions = session.receive(data)
        assert all(isinstance(action, ACTIONS) for action in actions)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(TOPICS, JSON_VALUES), max_size=8))
def test_arbitrary_frames_only_ever_yield_actions(frames: list[tuple[str, Any]]) -> None:
    session = Session(protected_policy(publish_allow=("#",)))
    for topic, body in frames:
        for action in session.receive(json.dumps({"topic": topic, "body": body})):
            assert isinstance(action, ACTIONS)
            if isinstance(action, Reply):
                assert json.loads(action.frame)["topic"] == "__error__"
            if isinstance(action, Publish):
                json.dumps(action.body).encode()  # a publish always carries a sendable body
