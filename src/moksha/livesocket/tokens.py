"""Signed tokens that grant a live-socket client its protected topics.

A token is an HS256 JWT (RFC 7519), signed with ``moksha.livesocket.token_secret``
and carrying two claims: ``topics``, the list of patterns it grants, and
``exp``, its expiry (required).  Browsers cannot set headers on a WebSocket,
so a client passes its token as the ``?token=`` query parameter or as its
first frame, ``{"topic": "__auth__", "body": "<token>"}``.  PyJWT does the
signing and checking; only HS256 is accepted, so a token claiming ``alg: none``
(or any other algorithm) is refused.

A protected pattern may be subscribed to only when a granted pattern
*covers* it: every topic the subscribed pattern can match is matched by the
granted one (see :func:`covers`).

Neither a token nor a secret ever appears in an error message, a ``repr``
or a :class:`TokenError`: they are credentials.

>>> secret = "s" * 32
>>> grant = verify_token(make_token(secret, ["org.example.#"], 60), secret)
>>> grant.patterns
('org.example.#',)
>>> covers("org.example.#", "org.example.*.event")
True
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import jwt

from moksha.errors import MokshaError
from moksha.topics import ANY_WORDS, ONE_WORD, matches, split

__all__ = [
    "ALGORITHM",
    "MIN_SECRET_BYTES",
    "Grant",
    "TokenError",
    "check_secret",
    "covers",
    "make_token",
    "verify_token",
]

ALGORITHM = "HS256"

# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash output.
MIN_SECRET_BYTES = 32


class TokenError(MokshaError, ValueError):
    """A token is malformed, expired, or not signed with the configured secret.

    The message says which, in a few words, and never contains the token.
    """


@dataclass(frozen=True, slots=True)
class Grant:
    """What a valid token grants.

    Attributes:
        patterns: the topic patterns of the ``topics`` claim.
        expires_at: the ``exp`` claim, in seconds since the epoch.
    """

    patterns: tuple[str, ...]
    expires_at: float

    def allows(self, topic: str, now: float) -> bool:
        """Whether the grant is valid at ``now`` and one of its patterns matches ``topic``."""
        return now < self.expires_at and any(matches(p, topic) for p in self.patterns)

    def covers(self, pattern: str, now: float) -> bool:
        """Whether the grant is valid at ``now`` and one of its patterns covers ``pattern``."""
        return now < self.expires_at and any(covers(p, pattern) for p in self.patterns)


def check_secret(secret: str) -> None:
    """Raise :class:`TokenError` unless ``secret`` is long enough for HS256.

    Raises:
        TokenError: the secret is shorter than :data:`MIN_SECRET_BYTES` bytes.
    """
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise TokenError(
            f"the token secret must be at least {MIN_SECRET_BYTES} bytes long for HS256 "
            "(RFC 7518); make one with: python -c 'import secrets; print(secrets.token_hex(32))'"
        )


def make_token(secret: str, topics: Iterable[str], ttl_seconds: float) -> str:
    """Sign a token granting ``topics`` for ``ttl_seconds``, for operators and tests.

    Args:
        secret: the value of ``moksha.livesocket.token_secret``.
        topics: the patterns the token grants (``["org.example.private.#"]``).
        ttl_seconds: how long the token stays valid; zero or less makes a token
            that has already expired (useful in tests).

    Returns:
        The compact JWT text.

    Raises:
        TokenError: the secret is too short, or a topic is not a non-empty string.
    """
    check_secret(secret)
    patterns = list(topics)
    if not all(isinstance(p, str) and p for p in patterns):
        raise TokenError("the topics a token grants must be non-empty strings")
    now = time.time()
    claims = {"topics": patterns, "iat": int(now), "exp": int(now + ttl_seconds)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, secret: str) -> Grant:
    """Check a token's signature, algorithm and expiry, and read what it grants.

    Args:
        token: the compact JWT text a client sent.
        secret: the value of ``moksha.livesocket.token_secret``.

    Returns:
        The :class:`Grant`.

    Raises:
        TokenError: the token is expired, not signed with ``secret`` using
            HS256, malformed, or its ``topics`` claim is not a list of patterns.
    """
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "topics"]}
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except jwt.InvalidAlgorithmError:
        raise TokenError(f"token refused: only {ALGORITHM} tokens are accepted") from None
    except jwt.InvalidSignatureError:
        raise TokenError("token refused: not signed with this server's secret") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(f"token refused: it has no {exc.claim!r} claim") from None
    except jwt.PyJWTError:
        # The library's message may quote parts of the token: keep it out.
        raise TokenError("token refused: not a valid JWT") from None
    topics = claims["topics"]
    if not isinstance(topics, list) or not all(isinstance(p, str) and p for p in topics):
        raise TokenError("token refused: its 'topics' claim must be a list of patterns")
    return Grant(tuple(topics), float(claims["exp"]))


def covers(granted: str, pattern: str) -> bool:
    """Whether every topic ``pattern`` can match is also matched by ``granted``.

    The rule is conservative (it may answer False for some patterns that are in
    fact covered, never True for one that is not): ``pattern``'s words are read
    as a topic in which a ``*`` word stands for "any one word" and a ``#`` word
    for "any words", and ``granted`` must match it with

    * a literal word matching only the same literal word;
    * ``*`` matching one literal word or one ``*`` (not ``#``, which may stand
      for zero or several words);
    * ``#`` matching any run of words, wildcards included.

    So ``a.#`` covers ``a``, ``a.b``, ``a.*.c`` and ``a.#``; ``a.*`` covers
    ``a.b`` and ``a.*`` but not ``a.#``; ``#`` covers everything.

    Args:
        granted: a pattern a token grants.
        pattern: the pattern a client wants to subscribe to.

    Returns:
        True when ``granted`` covers ``pattern``.
    """
    grant_words, words = split(granted), split(pattern)
    # reachable[j]: grant_words[:i] can absorb words[:j]; dynamic programming keeps
    # this linear in each length, whatever number of '#' words either side holds.
    reachable = [True] + [False] * len(words)
    for word in grant_words:
        if word == ANY_WORDS:
            seen = False
            for j, ok in enumerate(reachable):
                seen = seen or ok
                reachable[j] = seen
            continue
        step = [False] * len(reachable)
        for j in range(1, len(reachable)):
            other = words[j - 1]
            fits = other != ANY_WORDS if word == ONE_WORD else other == word
            step[j] = reachable[j - 1] and fits
        reachable = step
    return reachable[-1]
