"""Moksha's configuration: read once, typed, frozen.

Values come from four sources; each one overrides the one before it:

1. built-in defaults (the ``default`` of each entry in :data:`KEYS`);
2. one INI file, section ``[app:main]`` (or ``[moksha]``) with ``[DEFAULT]``
   as fallback, Paste style, so ``%(here)s`` and ``%(__file__)s`` work;
3. environment variables: each known key has one, ``MOKSHA_`` + the key with
   ``moksha.`` dropped, dots as underscores, upper-cased
   (``moksha.workers_per_consumer`` -> ``MOKSHA_WORKERS_PER_CONSUMER``);
4. a mapping passed in code, e.g. ``CentralMokshaHub({"zmq_enabled": True})``.

The result is a :class:`Config`: one typed attribute per known key, and also a
read-only mapping keyed by the original key names, because plugins written for
the original Moksha call ``hub.config.get("some.key", default)``.  Keys Moksha
does not know are kept as raw values for the plugins that read them.  A bad
value raises :class:`~moksha.errors.ConfigError` naming the key and where it
came from: the file path, ``environment MOKSHA_X`` or ``code``.
"""

from __future__ import annotations

import configparser
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from moksha.errors import ConfigError

__all__ = ["KEYS", "Config", "Key", "find_config_file", "load_config", "reference_table"]

_CONFIG_VARIABLE = "MOKSHA_CONFIG"
_SEARCH_NAMES = ("development.ini", "production.ini")
_SYSTEM_FILES = (Path("/etc/moksha/production.ini"), Path("/etc/moksha/development.ini"))
_SECTIONS = ("app:main", "moksha")
_INI_DEFAULTS = ("here", "__file__")  # set by us for interpolation, not settings
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class _Expected(Exception):
    """Raised by a parser; carries what it wanted, e.g. ``a whole number >= 1``."""


Parse = Callable[[Any], Any]


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Expected("non-empty text")
    return value.strip()


def _optional_text(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise _Expected("text")
    return value.strip()


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, str | int) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise _Expected("true or false (or yes/no, on/off, 1/0)")


def _words(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(word for word in re.split(r"[,\s]+", value) if word)
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip())
    raise _Expected("a list of names, or one string of names separated by commas or spaces")


def _integer(low: int, high: int | None = None) -> Parse:
    wanted = f"a whole number >= {low}" if high is None else f"a whole number from {low} to {high}"

    def parse(value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Expected(wanted)
        if value < low or (high is not None and value > high):
            raise _Expected(wanted)
        return value

    return parse


def _seconds(value: Any) -> float:
    try:
        number = float(value) if isinstance(value, str | int | float) else math.nan
    except ValueError:
        number = math.nan
    if isinstance(value, bool) or not (0 < number < math.inf):
        raise _Expected("a number of seconds > 0")
    return number


def _one_of(*choices: str) -> Parse:
    def parse(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        raise _Expected("one of " + ", ".join(repr(choice) for choice in choices))

    return parse


@dataclass(frozen=True, slots=True)
class Key:
    """One declared configuration key.

    Attributes:
        name: the key as written in INI files and the original Moksha.
        attr: the :class:`Config` attribute holding its typed value.
        parse: turns a raw value (a string, or an already typed value) into
            the typed one; raises on a bad value.
        default: the typed value used when no source sets the key.
        doc: one sentence for the configuration reference.
        secret: never shown by ``repr`` or :meth:`Config.redacted`.
        aliases: older spellings accepted in files and code.
    """

    name: str
    attr: str
    parse: Parse
    default: Any
    doc: str
    secret: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def env_var(self) -> str:
        """The environment variable that sets this key, e.g. ``MOKSHA_AMQP_BROKER``."""
        return "MOKSHA_" + self.name.removeprefix("moksha.").replace(".", "_").upper()


KEYS: tuple[Key, ...] = (
    Key(
        "moksha.backends",
        "backends",
        _words,
        (),
        "Backend names to use; empty means chosen from the broker keys, memory when none.",
    ),
    Key(
        "amqp_broker",
        "amqp_broker",
        _optional_text,
        None,
        "AMQP broker: an amqp:// or amqps:// URL, or the original user/password@host[:port].",
    ),
    Key(
        "amqp_exchange",
        "amqp_exchange",
        _text,
        "amq.topic",
        "AMQP topic exchange messages are published to and consumed from.",
    ),
    Key(
        "amqp_prefetch",
        "amqp_prefetch",
        _integer(1),
        100,
        "How many unacknowledged AMQP messages the broker may send ahead.",
    ),
    Key(
        "stomp_uri",
        "stomp_uri",
        _optional_text,
        None,
        "STOMP broker(s) as host:port, several separated by commas for failover.",
    ),
    Key(
        "stomp_broker",
        "stomp_broker",
        _optional_text,
        None,
        "STOMP broker host, used with stomp_port when stomp_uri is not set.",
    ),
    Key("stomp_port", "stomp_port", _integer(1, 65535), 61613, "STOMP broker port."),
    Key("stomp_user", "stomp_user", _optional_text, None, "STOMP login."),
    Key("stomp_pass", "stomp_pass", _optional_text, None, "STOMP passcode.", secret=True),
    Key(
        "stomp_ssl_key",
        "stomp_ssl_key",
        _optional_text,
        None,
        "Path to the client key for STOMP over TLS.",
    ),
    Key(
        "stomp_ssl_crt",
        "stomp_ssl_crt",
        _optional_text,
        None,
        "Path to the client certificate for STOMP over TLS.",
    ),
    Key(
        "stomp_ack_mode",
        "stomp_ack_mode",
        _one_of("auto", "client-individual"),
        "auto",
        "STOMP subscription ack mode.",
    ),
    Key(
        "stomp_send_explicit_nacks",
        "stomp_send_explicit_nacks",
        _boolean,
        True,
        "Send NACK frames for messages a consumer failed to handle.",
    ),
    Key("zmq_enabled", "zmq_enabled", _boolean, False, "Use the ZeroMQ backend."),
    Key(
        "zmq_publish_endpoints",
        "zmq_publish_endpoints",
        _words,
        (),
        "ZeroMQ endpoints to publish on, e.g. tcp://*:6543.",
        aliases=("zmq_published_endpoints",),
    ),
    Key(
        "zmq_subscribe_endpoints",
        "zmq_subscribe_endpoints",
        _words,
        (),
        "ZeroMQ endpoints to subscribe to.",
    ),
    Key(
        "zmq_subscribe_method",
        "zmq_subscribe_method",
        _one_of("connect", "bind"),
        "connect",
        "Whether ZeroMQ subscribers connect to or bind the subscribe endpoints.",
    ),
    Key(
        "zmq_strict",
        "zmq_strict",
        _boolean,
        True,
        "True: ZeroMQ patterns follow the AMQP rules like every backend; false: a pattern "
        "without wildcards also matches the topics it prefixes (the original's default).",
    ),
    Key(
        "moksha.workers_per_consumer",
        "workers_per_consumer",
        _integer(1),
        1,
        "How many messages each consumer handles at once.",
    ),
    Key(
        "moksha.blocking_mode",
        "blocking_mode",
        _boolean,
        True,
        "Publish waits for the backend to accept the message.",
    ),
    Key(
        "moksha.consumer_backlog",
        "consumer_backlog",
        _integer(1),
        10000,
        "Messages queued per consumer before the hub applies back-pressure.",
    ),
    Key(
        "moksha.max_retries",
        "max_retries",
        _integer(0),
        3,
        "How often a message is retried after its consumer fails.",
    ),
    Key(
        "moksha.shutdown_timeout",
        "shutdown_timeout",
        _seconds,
        5.0,
        "Seconds the hub waits for consumers to finish when stopping.",
    ),
    Key(
        "moksha.reconnect_delay",
        "reconnect_delay",
        _seconds,
        0.5,
        "First wait before reconnecting to a broker; doubles per failed attempt.",
    ),
    Key(
        "moksha.reconnect_max_delay",
        "reconnect_max_delay",
        _seconds,
        10.0,
        "Longest wait between two reconnection attempts.",
    ),
    Key(
        "moksha.publish_timeout",
        "publish_timeout",
        _seconds,
        30.0,
        "How long a publish may wait for a broker connection before it fails.",
    ),
    Key(
        "moksha.dead_letter_topic",
        "dead_letter_topic",
        _text,
        "{topic}.dead",
        "Where a message goes once its retries are used up; {topic} is its topic.",
    ),
    Key(
        "amqp_durable_queues",
        "amqp_durable_queues",
        _boolean,
        True,
        "One durable queue per consumer class (shared work, kept while down); "
        "false: exclusive auto-delete queues (fan-out, nothing kept).",
    ),
    Key(
        "amqp_queue_prefix",
        "amqp_queue_prefix",
        _text,
        "moksha",
        "Prefix of the queue names the hub declares.",
    ),
    Key(
        "amqp_heartbeat",
        "amqp_heartbeat",
        _integer(0),
        60,
        "AMQP heartbeat interval in seconds (0 disables).",
    ),
    Key(
        "stomp_destination_prefix",
        "stomp_destination_prefix",
        _text,
        "/topic/",
        "Prefix turning a topic into a STOMP destination.",
    ),
    Key(
        "stomp_vhost",
        "stomp_vhost",
        _text,
        "/",
        "Virtual host sent as the STOMP host header (RabbitMQ: '/').",
    ),
    Key(
        "stomp_heartbeat",
        "stomp_heartbeat",
        _integer(0),
        10000,
        "STOMP heart-beat interval in milliseconds (0 disables).",
    ),
    Key(
        "zmq_hwm",
        "zmq_hwm",
        _integer(0),
        10000,
        "ZeroMQ high-water mark of each socket, in messages (0: no limit).",
    ),
    Key(
        "zmq_reconnect_ivl",
        "zmq_reconnect_ivl",
        _integer(0),
        100,
        "ZeroMQ reconnect interval in milliseconds.",
    ),
    Key(
        "zmq_reconnect_ivl_max",
        "zmq_reconnect_ivl_max",
        _integer(0),
        5000,
        "ZeroMQ longest reconnect interval in milliseconds (backoff cap).",
    ),
    Key(
        "zmq_tcp_keepalive",
        "zmq_tcp_keepalive",
        _boolean,
        False,
        "Enable TCP keepalive on ZeroMQ sockets.",
    ),
    Key(
        "zmq_tcp_keepalive_idle",
        "zmq_tcp_keepalive_idle",
        _integer(1),
        60,
        "Seconds of idleness before the first TCP keepalive probe.",
    ),
    Key(
        "zmq_tcp_keepalive_intvl",
        "zmq_tcp_keepalive_intvl",
        _integer(1),
        10,
        "Seconds between TCP keepalive probes.",
    ),
    Key(
        "zmq_tcp_keepalive_cnt",
        "zmq_tcp_keepalive_cnt",
        _integer(1),
        5,
        "Unanswered TCP keepalive probes before the connection is dropped.",
    ),
    Key(
        "moksha.livesocket.backend",
        "livesocket_backend",
        _optional_text,
        None,
        "Live socket server to run, e.g. websocket; none when unset.",
    ),
    Key(
        "moksha.livesocket.websocket.port",
        "livesocket_websocket_port",
        _integer(0, 65535),
        9998,
        "Port of the WebSocket live socket; 0 picks a free one.",
    ),
    Key(
        "moksha.livesocket.websocket.interface",
        "livesocket_websocket_interface",
        _text,
        "127.0.0.1",
        "Interface the WebSocket live socket listens on.",
    ),
    Key(
        "moksha.monitoring.socket",
        "monitoring_socket",
        _optional_text,
        None,
        "Endpoint the hub publishes monitoring data on.",
    ),
    Key(
        "moksha.monitoring.socket.mode",
        "monitoring_socket_mode",
        _optional_text,
        None,
        "File mode of the monitoring socket, e.g. 770.",
    ),
)

_BY_NAME = {key.name: key for key in KEYS}
_ALIASES = {alias: key.name for key in KEYS for alias in key.aliases}
_URL_PASSWORD = re.compile(r"(://[^/@:\s]*:)[^/@\s]*@")
_SLASH_PASSWORD = re.compile(r"^([^/@:\s]+/)[^@\s]*@")  # the original user/password@host
_SECRET_WORDS = ("pass", "secret", "token")  # extras whose names suggest a secret


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Config(Mapping[str, Any]):
    """The parsed configuration: typed attributes, and a read-only mapping.

    Build one with :func:`load_config` or :meth:`coerce`
    (``load_config(environ={}, search=False)`` gives the defaults alone).  As a
    mapping it is keyed by the original key names (``config["amqp_broker"]``,
    ``config.get("moksha.workers_per_consumer")``); a known key whose value is
    None is absent from it, and unknown keys (:attr:`extras`) are present.
    ``repr`` shows only the keys set by some source, with secrets masked.
    """

    backends: tuple[str, ...]
    amqp_broker: str | None
    amqp_exchange: str
    amqp_prefetch: int
    stomp_uri: str | None
    stomp_broker: str | None
    stomp_port: int
    stomp_user: str | None
    stomp_pass: str | None
    stomp_ssl_key: str | None
    stomp_ssl_crt: str | None
    stomp_ack_mode: str
    stomp_send_explicit_nacks: bool
    zmq_enabled: bool
    zmq_publish_endpoints: tuple[str, ...]
    zmq_subscribe_endpoints: tuple[str, ...]
    zmq_subscribe_method: str
    zmq_strict: bool
    workers_per_consumer: int
    blocking_mode: bool
    consumer_backlog: int
    max_retries: int
    shutdown_timeout: float
    reconnect_delay: float
    reconnect_max_delay: float
    publish_timeout: float
    dead_letter_topic: str
    amqp_durable_queues: bool
    amqp_queue_prefix: str
    amqp_heartbeat: int
    stomp_destination_prefix: str
    stomp_vhost: str
    stomp_heartbeat: int
    zmq_hwm: int
    zmq_reconnect_ivl: int
    zmq_reconnect_ivl_max: int
    zmq_tcp_keepalive: bool
    zmq_tcp_keepalive_idle: int
    zmq_tcp_keepalive_intvl: int
    zmq_tcp_keepalive_cnt: int
    livesocket_backend: str | None
    livesocket_websocket_port: int
    livesocket_websocket_interface: str
    monitoring_socket: str | None
    monitoring_socket_mode: str | None
    extras: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    _sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False)

    def __getitem__(self, name: str) -> Any:
        key = _BY_NAME.get(_ALIASES.get(name, name))
        if key is None:
            return self.extras[name]
        value = getattr(self, key.attr)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        yield from (key.name for key in KEYS if getattr(self, key.attr) is not None)
        yield from self.extras

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        changed = {
            name: value
            for name, value in self.redacted().items()
            if self._sources.get(name, "default") != "default"
        }
        return f"Config({changed!r})"

    def source(self, key: str) -> str:
        """Say where a key's value came from.

        Args:
            key: an original key name, known or unknown.

        Returns:
            ``"default"``, the INI file's path, ``"environment MOKSHA_X"`` or ``"code"``.

        Raises:
            KeyError: the key is unknown and no source set it.
        """
        try:
            return self._sources[_ALIASES.get(key, key)]
        except KeyError:
            raise KeyError(f"{key!r} is not a known key and no source set it") from None

    def redacted(self) -> dict[str, Any]:
        """All keys and values, safe to log or print.

        Returns:
            A dict keyed by original key names (known keys first, even when
            None, then extras) with secrets shown as ``***`` and passwords in
            broker URLs masked (``amqp://guest:***@host/``).
        """
        known = {key.name: _mask(key.name, getattr(self, key.attr), key.secret) for key in KEYS}
        extras = {name: _mask(name, value, secret=False) for name, value in self.extras.items()}
        return known | extras

    def with_overrides(self, overrides: Mapping[str, Any]) -> Config:
        """Return a copy with some keys changed, validated like code overrides.

        Args:
            overrides: values keyed by original key names; typed or strings.

        Returns:
            A new Config; the changed keys' source is ``"code"``.

        Raises:
            ConfigError: a value is not valid for its key.
        """
        return _assemble([_entries(overrides, "code")], start=self)

    @classmethod
    def coerce(cls, obj: Config | Mapping[str, Any] | None) -> Config:
        """Turn whatever a user passed as configuration into a Config.

        Args:
            obj: a Config (returned as is), a mapping of overrides (applied on
                top of file and environment, see :func:`load_config`), or None.

        Returns:
            The Config.

        Raises:
            ConfigError: a value is not valid for its key.
            TypeError: obj is none of the above.
        """
        if isinstance(obj, Config):
            return obj
        if obj is None or isinstance(obj, Mapping):
            return load_config(overrides=obj)
        raise TypeError(f"config must be a Config, a mapping or None, not {type(obj).__name__}.")


def _mask(name: str, value: Any, secret: bool) -> Any:
    if value is None:
        return None
    if secret or any(word in name.lower() for word in _SECRET_WORDS):
        return "***"
    if isinstance(value, str):
        value = _URL_PASSWORD.sub(r"\1***@", value)
        if name == "amqp_broker":
            value = _SLASH_PASSWORD.sub(r"\1***@", value)
    return value


_Entry = tuple[str, Any, str]  # (key name, raw value, source)


def _entries(values: Mapping[str, Any], source: str) -> list[_Entry]:
    """Entries of one file or code mapping, with old spellings renamed."""
    entries = []
    for name, value in values.items():
        canonical = _ALIASES.get(name, name)
        if canonical != name and canonical in values:
            continue  # the current spelling wins over the old one
        entries.append((canonical, value, source))
    return entries


def _environment_entries(environ: Mapping[str, str]) -> list[_Entry]:
    return [
        (key.name, environ[key.env_var], f"environment {key.env_var}")
        for key in KEYS
        if key.env_var in environ
    ]


def _assemble(layers: Iterable[list[_Entry]], *, start: Config | None = None) -> Config:
    """Apply layers of entries, lowest precedence first, over defaults or ``start``."""
    values = {key.attr: key.default if start is None else getattr(start, key.attr) for key in KEYS}
    sources = {key.name: "default" for key in KEYS} | dict(start._sources if start else {})
    extras = dict(start.extras if start else {})
    for layer in layers:
        for name, raw, source in layer:
            sources[name] = source
            key = _BY_NAME.get(name)
            if key is None:
                extras[name] = raw
                continue
            try:
                values[key.attr] = key.parse(raw)
            except _Expected as exc:
                got = "a hidden value" if key.secret else repr(raw)
                raise ConfigError(f"expected {exc}, got {got}.", key=name, source=source) from None
    return Config(**values, extras=MappingProxyType(extras), _sources=MappingProxyType(sources))


class _PasteParser(configparser.ConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return optionstr  # keep keys' case, as Paste does


def _read_ini(path: Path, named_by: str) -> list[_Entry]:
    """Read the settings section of an INI file as entries whose source is its path."""
    where = os.path.abspath(path)
    if not os.path.exists(where):
        named = "" if named_by == "code" else f" (named by {named_by})"
        raise ConfigError(
            f"the config file {where}{named} does not exist; give the path of an INI "
            "file, or leave it out to use the built-in defaults.",
            source=named_by,
        )
    parser = _PasteParser(defaults={"here": os.path.dirname(where), "__file__": where})
    try:
        with open(where, encoding="utf-8") as file:
            parser.read_file(file)
        section = next(
            (name for name in _SECTIONS if parser.has_section(name)), configparser.DEFAULTSECT
        )
        values = dict(parser.items(section))
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"config file {where} cannot be parsed: {exc}. Fix the file; write %% for a literal %.",
            source=where,
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"config file {where} cannot be read: {exc.strerror}.", source=where
        ) from None
    return _entries({k: v for k, v in values.items() if k not in _INI_DEFAULTS}, where)


def find_config_file(
    cwd: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> Path | None:
    """Find the INI file to use when none is given.

    ``MOKSHA_CONFIG`` in the environment wins and is returned even if the file
    is missing, so that :func:`load_config` reports the mistake instead of
    quietly using defaults.  Otherwise the first that exists of, in order:
    ``<cwd>/development.ini``, ``<cwd>/production.ini``,
    ``/etc/moksha/production.ini``, ``/etc/moksha/development.ini``.

    Args:
        cwd: the directory to look in first (default: the current directory).
        environ: the environment (default: ``os.environ``).

    Returns:
        The path, or None when there is no file (which is not an error).
    """
    environ = os.environ if environ is None else environ
    base = Path.cwd() if cwd is None else Path(cwd)
    if environ.get(_CONFIG_VARIABLE):
        return base / environ[_CONFIG_VARIABLE]  # an absolute path replaces base
    candidates = [base / name for name in _SEARCH_NAMES] + list(_SYSTEM_FILES)
    return next((path for path in candidates if path.is_file()), None)


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    search: bool = True,
) -> Config:
    """Read the configuration once: defaults, then file, then environment, then code.

    Args:
        path: the INI file to read.  When None and ``search`` is true, the file
            :func:`find_config_file` names, if any; no file is never an error.
        overrides: values set in code, keyed by original key names; typed
            values (int, bool, list) and strings are both accepted.
        environ: the environment to read ``MOKSHA_*`` from (default:
            ``os.environ``).  Variables that name no known key are ignored.
        search: look for a file (and honour ``MOKSHA_CONFIG``) when ``path``
            is None.

    Returns:
        The frozen Config.

    Raises:
        ConfigError: ``path`` (or ``MOKSHA_CONFIG``) names a missing file, the
            file cannot be parsed, or a value is not valid for its key.
    """
    environ = os.environ if environ is None else environ
    named_by = "code"
    if path is None and search:
        path = find_config_file(environ=environ)
        named_by = f"environment {_CONFIG_VARIABLE}" if environ.get(_CONFIG_VARIABLE) else "search"
    layers = [_read_ini(Path(path), named_by)] if path is not None else []
    layers.append(_environment_entries(environ))
    layers.append(_entries(overrides or {}, "code"))
    return _assemble(layers)


def reference_table() -> str:
    """Every key as a Markdown table (key, environment variable, default, meaning).

    The README's configuration reference is this table.
    """
    rows = ["| key | environment | default | meaning |", "|---|---|---|---|"]
    for key in KEYS:
        default = key.default
        if isinstance(default, tuple):
            default = ", ".join(default) or "(empty)"
        elif default is None:
            default = "(unset)"
        rows.append(f"| `{key.name}` | `{key.env_var}` | `{default}` | {key.doc} |")
    return "\n".join(rows) + "\n"
