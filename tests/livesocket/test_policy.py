"""The live-socket policy: read from configuration, checked, and the Origin rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from moksha.config import load_config
from moksha.errors import ConfigError
from moksha.livesocket.policy import LiveSocketPolicy, origin_allowed, token_grants
from moksha.livesocket.tokens import make_token

SECRET = "moksha-test-secret-0123456789-abcdef"


def test_nothing_configured_gives_the_secure_defaults() -> None:
    policy = LiveSocketPolicy.from_config({})
    assert policy == LiveSocketPolicy()
    assert (policy.max_frame_bytes, policy.max_subscriptions) == (65536, 100)
    assert policy.max_messages_per_second == 20
    assert policy.publish_allow == () and not policy.may_publish("any.topic")
    assert policy.protected == () and policy.token_secret is None
    assert policy.allowed_origins == () and policy.conflate is True


def test_values_from_an_ini_file_are_parsed(tmp_path: Path) -> None:
    ini = tmp_path / "development.ini"
    ini.write_text(
        "[app:main]\n"
        "moksha.livesocket.max_frame_bytes = 4096\n"
        "moksha.livesocket.max_subscriptions = 5\n"
        "moksha.livesocket.max_messages_per_second = 2.5\n"
        "moksha.livesocket.publish_allow = chat.#, votes.*\n"
        "moksha.livesocket.protected = private.# admin.#\n"
        f"moksha.livesocket.token_secret = {SECRET}\n"
        "moksha.livesocket.allowed_origins = https://app.example.com\n"
        "moksha.livesocket.slow_policy = disconnect\n"
    )
    policy = LiveSocketPolicy.from_config(load_config(ini, environ={}, search=False))
    assert policy == LiveSocketPolicy(
        max_frame_bytes=4096,
        max_subscriptions=5,
        max_messages_per_second=2.5,
        publish_allow=("chat.#", "votes.*"),
        protected=("private.#", "admin.#"),
        token_secret=SECRET,
        allowed_origins=("https://app.example.com",),
        conflate=False,
    )


@pytest.mark.parametrize(
    ("config", "allowed"),
    [
        ({"moksha.livesocket.websocket.client2server": "true"}, ("#",)),
        ({"moksha.livesocket.websocket.client2server": True}, ("#",)),
        (
            {
                "moksha.livesocket.websocket.client2server": "false",
                "moksha.livesocket.publish_allow": ["chat.#"],
            },
            ("chat.#",),
        ),
    ],
)
def test_the_original_client2server_switch_allows_publishing_everywhere(
    config: dict[str, Any], allowed: tuple[str, ...]
) -> None:
    assert LiveSocketPolicy.from_config(config).publish_allow == allowed


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("max_frame_bytes", "lots", "expected a whole number of bytes, not 'lots'"),
        ("max_frame_bytes", 0, "must be a whole number >= 1"),
        ("max_subscriptions", "-1", "expected a whole number"),
        ("max_messages_per_second", "0", "must be a number > 0"),
        ("max_messages_per_second", "fast", "expected a number"),
        ("publish_allow", 7, "expected patterns separated by commas"),
        ("slow_policy", "drop", "expected conflate or disconnect"),
        ("websocket.client2server", "maybe", "expected true or false"),
        ("protected", "private.#", "need moksha.livesocket.token_secret"),
        ("token_secret", "hunter2", "at least 32 bytes"),
        ("allowed_origins", "app.example.com", "'app.example.com' is not an origin"),
        ("allowed_origins", "ftp://files.example.com", "e.g. https://app.example.com"),
    ],
)
def test_a_bad_value_names_its_key(key: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        LiveSocketPolicy.from_config({f"moksha.livesocket.{key}": value})
    assert caught.value.key == f"moksha.livesocket.{key}"
    assert expected in str(caught.value)


def test_a_bad_secret_is_not_repeated_in_the_error() -> None:
    with pytest.raises(ConfigError) as caught:
        LiveSocketPolicy.from_config({"moksha.livesocket.token_secret": "hunter2"})
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        LiveSocketPolicy.from_config({"moksha.livesocket.token_secret": 12345678})
    assert "12345678" not in str(caught.value)


def test_the_secret_is_not_in_the_policy_repr() -> None:
    policy = LiveSocketPolicy(protected=("a.#",), token_secret=SECRET)
    assert SECRET not in repr(policy) and "a.#" in repr(policy)


# -- origins ----------------------------------------------------------------------------

ORIGINS = [
    # (allowed_origins, Origin header, Host header, accepted)
    ((), None, "hub.example.com", True),  # not a browser
    ((), "https://hub.example.com", "hub.example.com", True),  # same origin, default port
    ((), "http://hub.example.com:9998", "hub.example.com:9998", True),
    ((), "HTTP://Hub.Example.com:9998", "hub.example.com:9998", True),
    ((), "http://hub.example.com:8080", "hub.example.com:9998", False),  # another port
    ((), "https://evil.example.net", "hub.example.com", False),
    ((), "http://localhost:8080", "localhost:9998", True),  # loopback page, none listed
    ((), "http://127.0.0.1:5000", "hub.example.com", True),
    ((), "http://[::1]:5000", "localhost:9998", True),
    ((), "null", "hub.example.com", False),  # sandboxed frame or file:// page
    ((), "http://hub.example.com:notaport", "hub.example.com", False),
    (("https://app.example.com",), "https://app.example.com", "hub.example.com", True),
    (("https://app.example.com",), "https://app.example.com:443", "hub.example.com", True),
    (("https://app.example.com/",), "https://app.example.com", "hub.example.com", True),
    (("https://app.example.com",), "http://app.example.com", "hub.example.com", False),
    (("https://app.example.com",), "http://localhost:8080", "hub.example.com", False),
    (("https://app.example.com",), "https://hub.example.com", "hub.example.com", True),
    (("*",), "https://anywhere.example.org", "hub.example.com", True),
    (("null",), "null", "hub.example.com", True),
]


@pytest.mark.parametrize(("listed", "origin", "host", "accepted"), ORIGINS)
def test_origin_allowed(
    listed: tuple[str, ...], origin: str | None, host: str | None, accepted: bool
) -> None:
    policy = LiveSocketPolicy(allowed_origins=listed)
    assert origin_allowed(policy, origin, host) is accepted


# -- tokens on requests without a session --------------------------------------------------


def test_token_grants_checks_validity_and_topic() -> None:
    policy = LiveSocketPolicy(token_secret=SECRET)
    token = make_token(SECRET, ["metrics.#"], 60)
    assert token_grants(policy, token, "metrics.cpu")
    assert not token_grants(policy, token, "admin.shutdown")
    assert not token_grants(policy, make_token(SECRET, ["metrics.#"], -1), "metrics.cpu")
    assert not token_grants(policy, "", "metrics.cpu")
    assert not token_grants(policy, None, "metrics.cpu")
    assert not token_grants(LiveSocketPolicy(), token, "metrics.cpu")
