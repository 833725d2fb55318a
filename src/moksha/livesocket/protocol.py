"""The live-socket protocol, sans-I/O: frames in, actions out, no sockets, no asyncio.

Every frame is a JSON text object ``{"topic": str, "body": any}``, as in the
original Moksha WebSocket server.  A client sends

* ``{"topic": "__topic_subscribe__", "body": "<pattern>"}``, or with a body
  ``{"pattern": "<pattern>", "since": "<last event id seen>"}`` to recover
  what it missed while disconnected (``"position": true`` as well asks for
  a ``__position__`` frame: where to resume from while it has seen nothing);
* ``{"topic": "__topic_unsubscribe__", "body": "<pattern>"}``;
* ``{"topic": "__auth__", "body": "<token>"}`` (see :mod:`.tokens`);
* any other topic: a publish, refused unless ``moksha.livesocket.publish_allow``
  has a pattern matching it.

The server sends ``{"topic": T, "body": B, "id": "<event id>"}`` for each
matching message (:func:`encode_event`; original clients ignore ``id``),
``__recovered__`` after replaying history (:func:`recovered_frame`),
``__position__`` when a subscription that asked for it begins
(:func:`position_frame`), and
``__error__`` for a bad frame that does not warrant closing
(:func:`error_frame`).  A frame that does warrant it gets a close code:
:data:`CLOSE_POLICY_VIOLATION`, :data:`CLOSE_MESSAGE_TOO_BIG`,
:data:`CLOSE_UNAUTHORIZED`; :data:`CLOSE_SLOW` is the server's.

A :class:`Session` holds one connection's state; the server feeds it each
frame with :meth:`Session.receive` and carries out the :data:`Action` values
it returns, in order.  The policy it enforces is :class:`.LiveSocketPolicy`.

>>> session = Session(LiveSocketPolicy())
>>> session.receive('{"topic": "__topic_subscribe__", "body": "org.example.#"}')
[Subscribe(pattern='org.example.#', since=None, position=False)]
>>> encode_event("org.example.event", '{"n":1}', "e1-7")
'{"topic":"org.example.event","body":{"n":1},"id":"e1-7"}'
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Set
from typing import Any

from moksha.errors import MessageError
from moksha.livesocket.frames import (
    AUTH,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_POLICY_VIOLATION,
    CLOSE_SLOW,
    CLOSE_UNAUTHORIZED,
    ERROR,
    POSITION,
    RECOVERED,
    SUBSCRIBE,
    UNSUBSCRIBE,
    Action,
    Close,
    Publish,
    Reply,
    Subscribe,
    Unsubscribe,
    encode_event,
    error_frame,
    position_frame,
    recovered_frame,
)
from moksha.livesocket.policy import LiveSocketPolicy, origin_allowed, token_grants
from moksha.livesocket.tokens import Grant, TokenError, covers, make_token, verify_token
from moksha.message import encode_body
from moksha.topics import ANY_WORDS, ONE_WORD, split

__all__ = [
    "AUTH",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_SLOW",
    "CLOSE_UNAUTHORIZED",
    "ERROR",
    "POSITION",
    "RECOVERED",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "Action",
    "Close",
    "LiveSocketPolicy",
    "Publish",
    "Reply",
    "Session",
    "Subscribe",
    "TokenError",
    "Unsubscribe",
    "encode_event",
    "error_frame",
    "make_token",
    "origin_allowed",
    "position_frame",
    "recovered_frame",
    "token_grants",
]

# AMQP brokers refuse routing keys longer than this, so no longer topic can exist.
MAX_TOPIC_BYTES = 255
# Matching cost grows with the power of the number of '#' words in a pattern; one
# client's pattern must not slow the routing of every message for everybody.
MAX_ANY_WORDS = 2
# Refused publishes tolerated on one connection before it is closed.
MAX_REFUSED_PUBLISHES = 10

_PUBLISH_OFF = (
    "publishing from the browser is off: set moksha.livesocket.publish_allow "
    "to the topics browsers may publish to"
)


def _pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be subscribed to, or None."""
    if not pattern:
        return "the pattern is empty: give a topic such as 'org.example.event' or 'org.example.#'"
    problem = _topic_problem(pattern, "pattern")
    if problem is None and split(pattern).count(ANY_WORDS) > MAX_ANY_WORDS:
        return (
            f"the pattern has more than {MAX_ANY_WORDS} '#' words, "
            "and one '#' already matches any number of words"
        )
    return problem


def _topic_problem(topic: str, what: str) -> str | None:
    try:
        size = len(topic.encode())
    except UnicodeEncodeError:
        return f"the {what} is not valid Unicode text"
    if size > MAX_TOPIC_BYTES:
        return (
            f"the {what} is longer than {MAX_TOPIC_BYTES} bytes, the longest topic brokers accept"
        )
    return None


def _too_big(data: str | bytes, limit: int) -> bool:
    """Whether ``data`` is over ``limit`` bytes of UTF-8, encoding only when in doubt."""
    if isinstance(data, bytes) or len(data) > limit:
        return len(data) > limit
    if len(data) * 4 <= limit:  # no code point takes more than 4 bytes
        return False
    return len(data.encode("utf-8", "surrogatepass")) > limit


class Session:
    """One connection's protocol state: its subscriptions, its grant, its rate budget.

    Args:
        policy: the limits and rules to enforce.
        now: a monotonic clock in seconds, for the rate limit (tests pass a fake).
        token: the token from the ``?token=`` query parameter, if any; when it
            is invalid, the first call to :meth:`receive` (or :meth:`start`)
            returns a close with :data:`CLOSE_UNAUTHORIZED`.
        clock: a wall clock in seconds since the epoch, for token expiry.
    """

    __slots__ = (
        "_budget",
        "_clock",
        "_closed",
        "_grant",
        "_last",
        "_now",
        "_pending",
        "_refused",
        "_subscriptions",
        "_warned",
        "policy",
    )

    def __init__(
        self,
        policy: LiveSocketPolicy,
        *,
        now: Callable[[], float] = time.monotonic,
        token: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self._now = now
        self._clock = clock
        self._subscriptions: dict[str, None] = {}  # a dict keeps subscription order
        self._grant: Grant | None = None
        self._budget = policy.burst  # a full burst to start with
        self._last = now()
        self._warned = False
        self._refused = 0
        self._closed = False
        self._pending: list[Action] = [] if token is None else self._authenticate(token, None)

    def __repr__(self) -> str:
        # Never the token: it is a credential.
        return (
            f"<Session subscriptions={len(self._subscriptions)} "
            f"authenticated={self._grant is not None} closed={self._closed}>"
        )

    @property
    def subscriptions(self) -> Set[str]:
        """The patterns this connection is subscribed to (a live, read-only view)."""
        return self._subscriptions.keys()

    @property
    def closed(self) -> bool:
        """Whether an action returned so far was a :class:`Close`."""
        return self._closed

    def start(self) -> list[Action]:
        """Actions to carry out as soon as the connection is accepted.

        Returns:
            ``[Close(CLOSE_UNAUTHORIZED, …)]`` when the token given to the
            constructor is invalid, else ``[]``.  Not calling this is fine:
            :meth:`receive` returns the same actions first.
        """
        pending, self._pending = self._pending, []
        return pending

    def may_see(self, topic: str) -> bool:
        """Whether a message on ``topic`` may be delivered to this connection.

        A topic matched by a ``protected`` pattern needs a valid grant whose
        patterns match it; every other topic may be seen.  Subscriptions to
        wide patterns (``#``) are allowed, and this is what keeps the protected
        topics they match from reaching a client without a grant.
        """
        if not self.policy.protects(topic):
            return True
        grant = self._grant
        return grant is not None and grant.allows(topic, self._clock())

    def receive(self, data: str | bytes) -> list[Action]:
        """Handle one frame from the client.

        Args:
            data: the frame's payload: text, or bytes for a binary frame.

        Returns:
            The actions to carry out, in order; after a :class:`Close`,
            nothing more.  Never raises for any input.
        """
        actions = self.start()
        if self._closed:
            return actions
        if _too_big(data, self.policy.max_frame_bytes):
            limit = self.policy.max_frame_bytes
            return [*actions, self._close(CLOSE_MESSAGE_TOO_BIG, f"frame over {limit} bytes")]
        refused = self._spend()
        if refused is not None:
            return [*actions, *refused]
        return [*actions, *self._handle(data)]

    # -- the frames -----------------------------------------------------------

    def _handle(self, data: str | bytes) -> list[Action]:
        if isinstance(data, bytes):
            try:
                data = data.decode()
            except UnicodeDecodeError:
                return self._error("a frame must be UTF-8 JSON text; this one is not UTF-8", None)
        try:
            frame = json.loads(data)
        except (ValueError, RecursionError):
            return self._error(
                'a frame must be a JSON object like {"topic": "org.example.event", "body": …}; '
                "this one is not JSON",
                data,
            )
        if not isinstance(frame, dict) or not isinstance(frame.get("topic"), str):
            return self._error(
                'a frame must be a JSON object with a string "topic" and a "body", like '
                '{"topic": "__topic_subscribe__", "body": "org.example.#"}',
                data,
            )
        topic: str = frame["topic"]
        body = frame.get("body")
        if topic == SUBSCRIBE:
            return self._subscribe(body, data)
        if topic == UNSUBSCRIBE:
            return self._unsubscribe(body, data)
        if topic == AUTH:
            if not isinstance(body, str):
                return self._error("__auth__ needs the token as its body, a string", None)
            return self._authenticate(body, data)
        if topic.startswith("__") and topic.endswith("__"):
            return self._error(
                f"unknown control topic {topic!r}: the ones a client may send are "
                f"{SUBSCRIBE}, {UNSUBSCRIBE} and {AUTH}",
                data,
            )
        return self._publish(topic, body, data)

    def _subscribe(self, body: Any, data: str) -> list[Action]:
        since, position = None, None
        if isinstance(body, dict):
            pattern, since, position = body.get("pattern"), body.get("since"), body.get("position")
            if position not in (None, True, False):
                return self._error('"position" must be true or false', data)
            if since is not None and not isinstance(since, str):
                return self._error('"since" must be the id of the last event seen, a string', data)
            since = since or None  # "" is how some clients say "nothing seen yet"
        else:
            pattern = body
        if not isinstance(pattern, str):
            return self._error(
                "cannot subscribe: the pattern must be a string such as 'org.example.#'", data
            )
        problem = _pattern_problem(pattern)
        if problem is not None:
            return self._error(f"cannot subscribe: {problem}", data)
        if pattern in self._subscriptions:
            return []  # already routed here: nothing was missed, nothing to replay
        limit = self.policy.max_subscriptions
        if len(self._subscriptions) >= limit:
            return self._error(
                f"cannot subscribe: this connection already has {limit} subscriptions, "
                "the most moksha.livesocket.max_subscriptions allows; unsubscribe first",
                data,
            )
        if any(covers(protected, pattern) for protected in self.policy.protected):
            grant = self._grant
            if grant is None or not grant.covers(pattern, self._clock()):
                return self._error(
                    f"cannot subscribe: {pattern!r} is protected; send a token that grants it "
                    f'first ({{"topic": "{AUTH}", "body": "<token>"}} or ?token=)',
                    data,
                )
        self._subscriptions[pattern] = None
        return [Subscribe(pattern, since, bool(position))]

    def _unsubscribe(self, body: Any, data: str) -> list[Action]:
        pattern = body.get("pattern") if isinstance(body, dict) else body
        if not isinstance(pattern, str):
            return self._error("cannot unsubscribe: the body must be the pattern, a string", data)
        if self._subscriptions.pop(pattern, False) is False:
            return []  # not subscribed: unsubscribing changes nothing
        return [Unsubscribe(pattern)]

    def _publish(self, topic: str, body: Any, data: str) -> list[Action]:
        words = split(topic)
        if not words:
            return self._error("cannot publish: the topic is empty", data)
        if ONE_WORD in words or ANY_WORDS in words:
            return self._error(
                f"cannot publish to {topic!r}: '*' and '#' words make it a pattern; "
                "publish to one topic",
                data,
            )
        problem = _topic_problem(topic, "topic")
        if problem is not None:
            return self._error(f"cannot publish: {problem}", data)
        if not self.policy.may_publish(topic):
            reason = (
                _PUBLISH_OFF
                if not self.policy.publish_allow
                else f"publishing to {topic!r} is not allowed: no pattern in "
                "moksha.livesocket.publish_allow matches it"
            )
            return self._refuse_publish(reason, data)
        if self.policy.protects(topic) and not self.may_see(topic):
            return self._refuse_publish(
                f"publishing to {topic!r} is not allowed: it is protected and this "
                "connection has no token granting it",
                data,
            )
        try:
            encode_body(body)
        except MessageError:
            return self._error("cannot publish: the body is not valid Unicode JSON", data)
        return [Publish(topic, body)]

    def _refuse_publish(self, reason: str, data: str) -> list[Action]:
        self._refused += 1
        if self._refused > MAX_REFUSED_PUBLISHES:
            return [self._close(CLOSE_POLICY_VIOLATION, "publishing refused too many times")]
        return self._error(reason, data)

    def _authenticate(self, token: str, data: str | None) -> list[Action]:
        secret = self.policy.token_secret
        if secret is None:
            return self._error(
                "tokens are not accepted here: the server has no moksha.livesocket.token_secret",
                f'{{"topic": "{AUTH}", "body": "<token>"}}' if data is not None else None,
            )
        try:
            self._grant = verify_token(token, secret)
        except TokenError as exc:
            # The message names what is wrong ("token expired") and never the token.
            return [self._close(CLOSE_UNAUTHORIZED, str(exc))]
        return []

    # -- limits and replies ---------------------------------------------------

    def _spend(self) -> list[Action] | None:
        """Take one frame from the token bucket; the actions to return instead, or None.

        The bucket refills at ``max_messages_per_second`` up to
        :attr:`LiveSocketPolicy.burst`.  Frames over budget are dropped and put
        the bucket into debt, so a client that keeps sending must first slow
        down; one error frame warns it, and once the debt reaches a full burst
        the connection is closed.
        """
        rate = self.policy.max_messages_per_second
        burst = self.policy.burst
        now = self._now()
        self._budget = min(burst, self._budget + max(0.0, now - self._last) * rate)
        self._last = now
        self._budget -= 1.0
        if self._budget >= 0.0:
            self._warned = False
            return None
        if self._budget < -burst:
            return [self._close(CLOSE_POLICY_VIOLATION, f"over {rate:g} messages per second")]
        if self._warned:
            return []
        self._warned = True
        return self._error(
            f"too many messages: a connection may send {rate:g} per second (bursts of "
            f"{burst:g}); frames are ignored until the rate drops, and the connection "
            "is closed if it does not",
            None,
        )

    def _error(self, error: str, data: str | None) -> list[Action]:
        return [Reply(error_frame(error, data))]

    def _close(self, code: int, reason: str) -> Close:
        self._closed = True
        return Close(code, reason)
