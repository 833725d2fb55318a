"""Logging for the hub and the ``moksha`` commands: one line per event, text or JSON, no secrets.

:func:`configure_logging` sends every log record to stderr (or a given
stream), one line each (a traceback follows on its own lines)::

    2025-01-31 12:00:00,123 WARNING moksha.hub: Thermometer failed  topic=a.b consumer=Thermometer

or, with ``moksha.logging.format = json``, one JSON object per line, traceback
included (for journald, Loki, Elasticsearch)::

    {"time": "2025-01-31T12:00:00.123+00:00", "level": "WARNING", "logger": "moksha.hub",
     "message": "Thermometer failed", "topic": "a.b", "consumer": "Thermometer"}

Fields come from ``extra=`` (``log.warning("...", extra={"topic": t})``):
``topic``, ``consumer`` and ``backend`` first, then any others.  Levels per
logger come from ``moksha.logging.levels = moksha.hub=DEBUG, aio_pika=WARNING``.

Secrets never reach the output: :class:`SecretMask` replaces every secret the
configuration holds (``stomp_pass``, ``moksha.session.secret``, the live
socket's token secret, passwords in URLs, unknown keys whose names say
``pass``, ``secret`` or ``token``) with ``***`` in messages, fields and
tracebacks.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self
from urllib.parse import unquote

from moksha.errors import ConfigError

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = [
    "FORMAT_KEY",
    "LEVELS_KEY",
    "JsonFormatter",
    "LoggingSetup",
    "SecretMask",
    "TextFormatter",
    "configure_logging",
    "logger_levels",
    "secret_values",
]

FORMAT_KEY = "moksha.logging.format"
LEVELS_KEY = "moksha.logging.levels"
FIELDS = ("topic", "consumer", "backend")
"""Fields shown first, in this order, when a record has them."""
MASK = "***"
MIN_SECRET_CHARS = 4
"""Shorter secrets are not masked: replacing every "ab" would garble every line."""

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_SECRET_WORDS = ("pass", "secret", "token")  # as `moksha config` masks extras
_URL_PASSWORD = re.compile(r"://[^/@:\s]*:([^/@\s]+)@")
_SLASH_PASSWORD = re.compile(r"^[^/@:\s]+/([^@\s]+)@")  # the original user/password@host
# What every LogRecord has; anything else on a record came from extra=.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _fields(record: logging.LogRecord) -> Iterator[tuple[str, Any]]:
    """The ``extra=`` fields of ``record``: :data:`FIELDS` first, then the rest by name."""
    extra = {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}
    for name in FIELDS:
        if name in extra:
            yield name, extra.pop(name)
    yield from sorted(extra.items())


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message  field=value ...`` (a traceback follows on its own lines).

    Args:
        fmt: the ``logging`` format of the part before the fields.
    """

    def __init__(self, fmt: str = _TEXT_FORMAT) -> None:
        super().__init__(fmt)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = " ".join(f"{name}={_text_value(value)}" for name, value in _fields(record))
        return f"{line}  {fields}" if fields else line


def _text_value(value: Any) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in "\"'=" for c in text) or not text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, fields.

    A traceback is the ``exception`` field, so a record stays one line.
    """

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        event.update(_fields(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            event["exception"] = record.exc_text
        if record.stack_info:
            event["stack"] = self.formatStack(record.stack_info)
        return json.dumps(event, ensure_ascii=False, default=str)


class SecretMask(logging.Filter):
    """Replaces known secret values with ``***`` in records: message, fields, traceback.

    Put it on a handler: it then sees every record that handler writes,
    whichever logger it came from.

    Args:
        secrets: the values to hide (those under :data:`MIN_SECRET_CHARS` are left).
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        hidden = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, hidden))) if hidden else None

    def mask(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:
            return True  # logging reports the bad arguments itself, when formatting
        record.msg, record.args = self.mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        for name, value in _fields(record):
            if isinstance(value, str):
                setattr(record, name, self.mask(value))
        return True


def secret_values(config: Config) -> set[str]:
    """Every secret ``config`` holds: secret keys, passwords in URLs, secret-looking extras.

    Percent-encoded URL passwords are returned both ways, as logs may show either.
    """
    from moksha.config import KEYS

    secrets: set[str] = set()
    secret_keys = {key.name for key in KEYS if key.secret}
    for name in config:
        values = _strings(config[name])
        if name in secret_keys or (
            name in config.extras and any(word in name.lower() for word in _SECRET_WORDS)
        ):
            secrets.update(values)
            continue
        for value in values:
            for pattern in (_URL_PASSWORD, _SLASH_PASSWORD):
                for password in pattern.findall(value):
                    secrets.update({password, unquote(password)})
    return {secret for secret in secrets if secret}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


def logger_levels(config: Config) -> dict[str, int]:
    """The levels ``moksha.logging.levels`` sets, by logger name.

    The value lists ``LOGGER=LEVEL`` entries separated by commas or lines;
    ``root`` names the root logger.

    Raises:
        ConfigError: an entry is not ``LOGGER=LEVEL``.
    """
    raw = config.get(LEVELS_KEY)
    # Commas or lines (an INI value may go on over several); "moksha.hub = DEBUG" is fine.
    items = re.split(r"[,\n]+", raw) if isinstance(raw, str) else _strings(raw)
    levels = {}
    for item in filter(None, (item.strip() for item in items)):
        name, _, level = item.partition("=")
        number = logging.getLevelName(level.strip().upper())
        if not name.strip() or not isinstance(number, int):
            raise ConfigError(
                f"{item!r} is not LOGGER=LEVEL with LEVEL one of DEBUG, INFO, WARNING, ERROR, "
                "CRITICAL; write e.g. moksha.hub=DEBUG, aio_pika=WARNING",
                key=LEVELS_KEY,
                source=config.source(LEVELS_KEY),
            )
        levels[name.strip()] = number
    return levels


class LoggingSetup:
    """What :func:`configure_logging` changed; :meth:`undo` (or leaving ``with``) reverts it.

    Attributes:
        handler: the handler writing the lines.
        mask: the filter hiding secrets.
    """

    def __init__(self, handler: logging.Handler, mask: SecretMask, levels: dict[str, int]) -> None:
        self.handler = handler
        self.mask = mask
        self._previous = {name: logging.getLogger(name).level for name in levels}
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        logging.getLogger().addHandler(handler)

    def undo(self) -> None:
        """Remove the handler and restore the levels it changed.  Undoing twice is harmless."""
        logging.getLogger().removeHandler(self.handler)
        for name, level in self._previous.items():
            logging.getLogger(name).setLevel(level)
        self._previous = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.undo()


def configure_logging(
    config: Config | None = None, level: int = logging.INFO, *, stream: IO[str] | None = None
) -> LoggingSetup:
    """Log every record to ``stream``, one line each, in the configured format, secrets masked.

    Only a handler of its own is added to the root logger (and removed by
    :meth:`LoggingSetup.undo`), so handlers others installed keep working.

    Args:
        config: supplies ``moksha.logging.format`` (``text`` or ``json``),
            ``moksha.logging.levels`` and the secrets to mask; None: text, no
            per-logger levels, nothing to mask.
        level: the root logger's level (``root=LEVEL`` in ``moksha.logging.levels``
            overrides it).
        stream: where lines go (default: stderr).  Text to a terminal is
            rendered by rich.

    Returns:
        The setup, to undo when done (``ctx.with_resource(configure_logging(...))``).

    Raises:
        ConfigError: ``moksha.logging.format`` or ``moksha.logging.levels`` is wrong.
    """
    stream = stream if stream is not None else sys.stderr
    log_format = config.logging_format if config is not None else "text"
    levels = {"": level} | (logger_levels(config) if config is not None else {})
    handler: logging.Handler
    if log_format == "json":
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
    elif stream.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(
            console=Console(file=stream),
            show_path=False,
            log_time_format="%H:%M:%S",
            omit_repeated_times=False,
        )
        handler.setFormatter(TextFormatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(TextFormatter())
    mask = SecretMask(secret_values(config) if config is not None else ())
    handler.addFilter(mask)
    return LoggingSetup(handler, mask, levels)
