"""Structured logging: one line per event, fields from ``extra=``, levels per logger, no secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from moksha.config import Config, load_config
from moksha.errors import ConfigError
from moksha.logs import configure_logging

STOMP_PASS = "correct-horse-battery"
AMQP_PASS = "p@ss:word/1"
AMQP_URL = "amqp://moksha:p%40ss%3Aword%2F1@127.0.0.1:5672/"


def config(**settings: Any) -> Config:
    return load_config(overrides=settings, environ={}, search=False)


@pytest.fixture
def logged() -> Iterator[Any]:
    """Configure logging into a buffer for a test; undone afterwards. Returns the lines."""
    setups = []

    def configure(cfg: Config, level: int = logging.INFO) -> tuple[io.StringIO, Any]:
        stream = io.StringIO()
        setups.append(configure_logging(cfg, level, stream=stream))
        return stream, setups[-1]

    yield configure
    for setup in setups:
        setup.undo()


def raise_with(text: str) -> BaseException:
    try:
        raise RuntimeError(text)
    except RuntimeError as exc:
        return exc


def test_the_stomp_password_never_reaches_the_log(logged: Any) -> None:
    stream, _ = logged(config(stomp_uri="127.0.0.1:61613", stomp_user="u", stomp_pass=STOMP_PASS))
    log = logging.getLogger("moksha.hub.backends.stomp")
    log.warning("login %s failed", STOMP_PASS, extra={"backend": "stomp", "detail": STOMP_PASS})
    log.error("cannot connect", exc_info=raise_with(f"refused passcode {STOMP_PASS}"))
    output = stream.getvalue()
    assert STOMP_PASS not in output
    assert "login *** failed" in output
    assert "detail=***" in output
    assert "RuntimeError: refused passcode ***" in output


def test_a_password_in_a_broker_url_is_masked_as_written_and_decoded(logged: Any) -> None:
    stream, _ = logged(config(amqp_broker=AMQP_URL))
    logging.getLogger("moksha.hub").info("connecting to %s with %s", AMQP_URL, AMQP_PASS)
    output = stream.getvalue()
    assert "p%40ss" not in output
    assert AMQP_PASS not in output
    assert "amqp://moksha:***@127.0.0.1:5672/ with ***" in output


def test_json_lines_carry_topic_consumer_and_backend(logged: Any) -> None:
    stream, _ = logged(config(**{"moksha.logging.format": "json", "stomp_pass": STOMP_PASS}))
    log = logging.getLogger("moksha.hub")
    fields = {"topic": "org.example.a", "consumer": "Thermometer", "backend": "amqp"}
    log.warning("consume failed", extra=fields)
    log.error("gave up", extra={"topic": "org.example.a"}, exc_info=raise_with(STOMP_PASS))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, "one line per event, tracebacks included"
    first, second = map(json.loads, lines)
    assert first["level"] == "WARNING"
    assert first["logger"] == "moksha.hub"
    assert first["message"] == "consume failed"
    assert {key: first[key] for key in fields} == fields
    assert first["time"].endswith("+00:00")
    assert second["topic"] == "org.example.a"
    assert "RuntimeError: ***" in second["exception"]


def test_text_lines_end_with_the_fields(logged: Any) -> None:
    stream, _ = logged(config())
    extra = {"backend": "stomp", "topic": "a.b", "consumer": "Two Words"}
    logging.getLogger("moksha.hub").info("started", extra=extra)
    [line] = stream.getvalue().splitlines()
    assert line.endswith('moksha.hub: started  topic=a.b consumer="Two Words" backend=stomp')


def test_levels_per_logger_from_the_config(logged: Any) -> None:
    settings = {"moksha.logging.levels": "moksha.hub = DEBUG,\naio_pika=ERROR"}  # as in an INI file
    stream, setup = logged(config(**settings), logging.INFO)
    logging.getLogger("moksha.hub.runners").debug("hub detail")
    logging.getLogger("moksha.web").debug("web detail")
    logging.getLogger("aio_pika.robust_connection").warning("pika chatter")
    logging.getLogger("aio_pika").error("pika failure")
    output = stream.getvalue()
    assert "hub detail" in output
    assert "web detail" not in output
    assert "pika chatter" not in output
    assert "pika failure" in output
    setup.undo()
    assert logging.getLogger("moksha.hub").level == logging.NOTSET
    assert setup.handler not in logging.getLogger().handlers


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"moksha.logging.format": "xml"}, r"^moksha.logging.format \(from code\): .*'xml'"),
        ({"moksha.logging.levels": "moksha.hub=LOUD"}, r"^moksha.logging.levels .*LOGGER=LEVEL"),
    ],
)
def test_a_bad_logging_setting_names_the_key(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        configure_logging(config(**settings), stream=io.StringIO())
