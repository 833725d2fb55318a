"""Tokens: what a valid one grants, why a bad one is refused, and which patterns a grant covers."""

from __future__ import annotations

import time

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moksha.livesocket.tokens import Grant, TokenError, covers, make_token, verify_token
from moksha.topics import matches

SECRET = "moksha-test-secret-" + "0123456789abcdef" * 3  # 66 bytes: enough for HS512 too


def test_a_valid_token_grants_its_topics_until_it_expires() -> None:
    before = time.time()
    grant = verify_token(make_token(SECRET, ["org.example.#", "chat.*"], 60), SECRET)
    assert grant.patterns == ("org.example.#", "chat.*")
    assert before + 58 <= grant.expires_at <= time.time() + 60
    assert grant.allows("org.example.a.b", before)
    assert not grant.allows("org.example.a.b", grant.expires_at)
    assert not grant.allows("other", before)


def _signed(claims: dict[str, object], key: str | None = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


LATER = int(time.time()) + 3600

BAD_TOKENS = [
    ("expired", make_token(SECRET, ["a"], -5), "token expired"),
    ("wrong secret", make_token("another-secret-of-32-bytes-or-more!!", ["a"], 60), "not signed"),
    ("alg none", _signed({"topics": ["#"], "exp": LATER}, None, "none"), "only HS256"),
    ("alg HS512", _signed({"topics": ["#"], "exp": LATER}, SECRET, "HS512"), "only HS256"),
    ("no exp", _signed({"topics": ["#"]}), "'exp'"),
    ("no topics", _signed({"exp": LATER}), "'topics'"),
    ("topics a string", _signed({"topics": "#", "exp": LATER}), "list of patterns"),
    ("topics with a number", _signed({"topics": ["a", 3], "exp": LATER}), "list of patterns"),
    ("not a JWT", "hello", "not a valid JWT"),
    ("empty", "", "not a valid JWT"),
]


@pytest.mark.parametrize(
    ("token", "why"), [c[1:] for c in BAD_TOKENS], ids=[c[0] for c in BAD_TOKENS]
)
def test_a_bad_token_is_refused_saying_why_without_quoting_it(token: str, why: str) -> None:
    with pytest.raises(TokenError) as caught:
        verify_token(token, SECRET)
    message = str(caught.value)
    assert why in message
    assert SECRET not in message
    assert not token or token not in message
    # PyJWT's own error may quote the token: it must not ride along in a traceback.
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_a_short_secret_is_refused_with_how_to_make_a_good_one() -> None:
    with pytest.raises(TokenError, match=r"at least 32 bytes.*secrets\.token_hex"):
        make_token("short", ["a"], 60)


def test_a_grant_repr_shows_no_token() -> None:
    token = make_token(SECRET, ["a.#"], 60)
    assert token not in repr(verify_token(token, SECRET))
    assert repr(Grant(("a.#",), 5.0)) == "Grant(patterns=('a.#',), expires_at=5.0)"


# -- coverage ---------------------------------------------------------------------------

COVERS = [
    ("#", "anything.at.all", True),
    ("#", "#", True),
    ("a.#", "a", True),
    ("a.#", "a.b.c", True),
    ("a.#", "a.*.c", True),
    ("a.#", "a.#", True),
    ("a.#", "a.#.b", True),
    ("a.#", "b.#", False),
    ("a.#", "#", False),
    ("a.*", "a.b", True),
    ("a.*", "a.*", True),
    ("a.*", "a.#", False),  # a.# also matches "a" and "a.b.c"
    ("a.*", "a.b.c", False),
    ("a.b", "a.b", True),
    ("a.b", "a.*", False),
    ("*.b", "a.b", True),
    ("a.#.z", "a.b.c.z", True),
    ("a.#.z", "a.#.z", True),
    ("a.#.z", "a.#", False),
    ("a*", "ab", False),  # a word that merely contains '*' is literal
    ("*.#", "#.*", False),  # equal sets, but the rule is conservative
]


@pytest.mark.parametrize(("granted", "pattern", "expected"), COVERS)
def test_covers(granted: str, pattern: str, expected: bool) -> None:
    assert covers(granted, pattern) is expected


WORDS = st.sampled_from(["a", "b", "*", "#"])
PATTERNS = st.lists(WORDS, max_size=5).map(".".join)
TOPICS = st.lists(st.sampled_from(["a", "b", "c"]), max_size=6).map(".".join)


@settings(max_examples=1000)
@given(granted=PATTERNS, pattern=PATTERNS, topics=st.lists(TOPICS, max_size=20))
def test_covers_never_grants_a_topic_the_granted_pattern_does_not_match(
    granted: str, pattern: str, topics: list[str]
) -> None:
    if covers(granted, pattern):
        for topic in topics:
            if matches(pattern, topic):
                assert matches(granted, topic)


@given(pattern=PATTERNS)
def test_every_pattern_covers_itself_and_hash_covers_every_pattern(pattern: str) -> None:
    assert covers(pattern, pattern)
    assert covers("#", pattern)


def test_covers_stays_fast_on_long_patterns_with_many_hashes() -> None:
    # A quadratic algorithm, not an exponential one: this would not finish otherwise.
    granted = ".".join(["#", "a"] * 60)
    pattern = ".".join(["a"] * 125 + ["b"])
    assert covers(granted, pattern) is False
