"""Reading the configuration: defaults, INI file, environment and code, into a :class:`Config`."""

from __future__ import annotations

import configparser
import dataclasses
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from moksha.config.keys import KEY_ALIASES, KEYS, KEYS_BY_NAME, BadValue
from moksha.config.spelling import likely_key, likely_variable
from moksha.errors import ConfigError

__all__ = ["Config", "Misspelling", "find_config_file", "load_config"]

log = logging.getLogger("moksha.config")

_CONFIG_VARIABLE = "MOKSHA_CONFIG"
_ENVIRONMENT = "the environment"
KNOWN_VARIABLES = frozenset({_CONFIG_VARIABLE, *(key.env_var for key in KEYS)})
_SEARCH_NAMES = ("development.ini", "production.ini")
_SYSTEM_FILES = (Path("/etc/moksha/production.ini"), Path("/etc/moksha/development.ini"))
_SECTIONS = ("app:main", "moksha")
_INI_DEFAULTS = ("here", "__file__")  # set by us for interpolation, not settings
_URL_PASSWORD = re.compile(r"(://[^/@:\s]*:)[^/@\s]*@")
_SLASH_PASSWORD = re.compile(r"^([^/@:\s]+/)[^@\s]*@")  # the original user/password@host
_SECRET_WORDS = ("pass", "secret", "token")  # extras whose names suggest a secret
_INI_DELIMITERS = ("=", ":")


@dataclass(frozen=True, slots=True)
class Misspelling:
    """An unknown key that looks like a known one (see :mod:`moksha.config.spelling`).

    Attributes:
        key: the key as written.
        source: where it was set (a file path, ``code``).
        meant: the known key it probably should be.
    """

    key: str
    source: str
    meant: str

    def __str__(self) -> str:
        if self.source == _ENVIRONMENT:
            return (
                f"unknown environment variable {self.key}: did you mean {self.meant}? "
                "Moksha ignores it; rename it"
            )
        return (
            f"unknown key {self.key!r} in {self.source}: did you mean {self.meant!r}? "
            "Moksha ignores it (it is kept for plugins); rename it if it is Moksha's"
        )


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
    stomp_amqp_url: str | None
    zmq_enabled: bool
    zmq_publish_endpoints: tuple[str, ...]
    zmq_subscribe_endpoints: tuple[str, ...]
    zmq_subscribe_method: str
    zmq_strict: bool
    zmq_metadata_frame: bool
    mqtt_url: str | None
    mqtt_node: str | None
    mqtt_session_expiry: int
    mqtt_inflight: int
    nats_url: str | None
    nats_stream: str
    nats_stream_subjects: tuple[str, ...]
    nats_stream_max_age: float
    nats_max_deliver: int
    nats_ack_wait: float
    nats_inflight: int
    workers_per_consumer: int
    blocking_mode: bool
    consumer_backlog: int
    outgoing_queue: int
    retry_backlog: int
    max_retries: int
    shutdown_timeout: float
    reconnect_delay: float
    reconnect_max_delay: float
    publish_timeout: float
    retry_delay: float
    dead_letter_topic: str
    queue_depth_interval: float
    queue_depth_limit: int
    amqp_durable_queues: bool
    amqp_queue_prefix: str
    schema_mode: str
    schema_files: tuple[str, ...]
    amqp_fedora_headers: bool
    amqp_topic_prefix: str | None
    amqp_heartbeat: int
    stomp_prefetch: int
    stomp_destination_prefix: str
    stomp_vhost: str
    stomp_heartbeat: int
    stomp_persistent: bool
    zmq_hwm: int
    zmq_reconnect_ivl: int
    zmq_reconnect_ivl_max: int
    zmq_tcp_keepalive: bool
    zmq_tcp_keepalive_idle: int
    zmq_tcp_keepalive_intvl: int
    zmq_tcp_keepalive_cnt: int
    redis_bus_url: str | None
    redis_bus_prefix: str
    redis_bus_maxlen: int
    redis_bus_claim_idle: float
    redis_bus_max_deliveries: int
    amqp1_url: str | None
    amqp1_prefetch: int
    livesocket_backend: str | None
    livesocket_websocket_port: int
    livesocket_websocket_interface: str
    livesocket_max_frame_bytes: int
    livesocket_max_subscriptions: int
    livesocket_max_messages_per_second: float
    livesocket_publish_allow: tuple[str, ...]
    livesocket_client2server: bool
    livesocket_protected: tuple[str, ...]
    livesocket_token_secret: str | None
    livesocket_allowed_origins: tuple[str, ...]
    livesocket_slow_policy: str
    livesocket_queue_size: int
    livesocket_history_size: int
    livesocket_history_age: float
    livesocket_history_url: str | None
    livesocket_url: str | None
    cluster_url: str | None
    cluster_prefix: str
    cluster_ttl: float
    livesocket_bind_on_demand: bool
    web_trusted_origins: tuple[str, ...]
    debug: bool
    session_secret: str | None
    cache_url: str | None
    cache_size: int
    auth_header: str | None
    auth_groups_header: str | None
    auth_login_url: str | None
    feedaggregator: bool
    feed_urls: tuple[str, ...]
    feed_file: str
    feed_cache: str
    feed_max_age: float
    feed_poll_frequency: float
    feed_deferred_groups: int
    feed_timeout: float
    feed_max_bytes: int
    feed_max_backoff: float
    feeds_allow: tuple[str, ...]
    feeds_allow_private: bool
    dashboard_layout: str | None
    dashboard_demo: bool
    dashboard_title: str
    dashboard_columns: int | None
    monitoring_interval: float
    logging_format: str
    logging_levels: str | None
    monitoring_socket: str | None
    monitoring_socket_mode: str | None
    archive: bool
    archive_url: str | None
    archive_topics: tuple[str, ...]
    archive_keep_days: int
    archive_batch_size: int
    archive_topic_prefix: str | None
    archive_category_word: int | None
    data_dir: str
    extras: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    _sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False)
    # MOKSHA_* variables that set no key but look like a known key's variable.
    _misspelt_variables: tuple[Misspelling, ...] = field(default=(), compare=False)

    def __getitem__(self, name: str) -> Any:
        key = KEYS_BY_NAME.get(KEY_ALIASES.get(name, name))
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
            return self._sources[KEY_ALIASES.get(key, key)]
        except KeyError:
            raise KeyError(f"{key!r} is not a known key and no source set it") from None

    def misspellings(self) -> list[Misspelling]:
        """Unknown keys that look like misspelt known ones, each with the key it probably meant."""
        found = list(self._misspelt_variables)
        for name in self.extras:
            meant = likely_key(name)
            if meant is not None:
                found.append(Misspelling(name, self._sources.get(name, "code"), meant))
        return found

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
        canonical = KEY_ALIASES.get(name, name)
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
            key = KEYS_BY_NAME.get(name)
            if key is None:
                extras[name] = raw
                continue
            try:
                values[key.attr] = key.parse(raw)
            except BadValue as exc:
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
            text = file.read()
        _check_separators(where, text)
        parser.read_string(text, source=where)
        section = next(
            (name for name in _SECTIONS if parser.has_section(name)), configparser.DEFAULTSECT
        )
        values = _app_db_urls(parser) | dict(parser.items(section))
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


def _check_separators(where: str, text: str) -> None:
    """Refuse a settings line without ``=`` (or ``:``) between its key and value.

    configparser would read ``amqp_broker amqp://host`` as the key
    ``amqp_broker amqp`` (split at the URL's colon) and a line with neither as
    a parse error without the fix; this names the line and says what to write.

    Raises:
        ConfigError: naming the file, the line number and the line.
    """
    section = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;" or line[0].isspace():
            continue  # blank, comment, or the continuation of a value
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            continue
        if section not in (*_SECTIONS, configparser.DEFAULTSECT):
            continue  # other programs' sections (Paste's [server:main], logging) are theirs
        cuts = [stripped.find(mark) for mark in _INI_DELIMITERS if mark in stripped]
        key = stripped[: min(cuts)].strip() if cuts else stripped
        if cuts and key and not any(char.isspace() for char in key):
            continue
        words = stripped.split(None, 1)
        example = f"{words[0]} = {words[1]}" if len(words) == 2 else f"{stripped} = VALUE"
        raise ConfigError(
            f"config file {where}, line {number}: {stripped!r} has no '=' between the key "
            f"and the value; write {example!r}",
            source=where,
        )


def _app_db_urls(parser: configparser.ConfigParser) -> dict[str, str]:
    """``sqlalchemy.url`` of ``[app:<name>]`` sections, as ``moksha.app_db.<name>.url``.

    Paste-era apps kept their database there; :mod:`moksha.app_db` reads the key.
    The settings section's own ``moksha.app_db.<name>.url`` wins over it.
    """
    urls = {}
    for section in parser.sections():
        kind, _, name = section.partition(":")
        if kind == "app" and name and f"{kind}:{name}" not in _SECTIONS:
            url = parser.get(section, "sqlalchemy.url", fallback=None)
            if url is not None:
                urls[f"moksha.app_db.{name}.url"] = url
    return urls


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
    warn: bool = True,
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
        warn: log one WARNING per unknown key that looks like a misspelt
            known one (:meth:`Config.misspellings`); a caller that sets up
            logging afterwards passes False and logs them itself.

    Returns:
        The frozen Config.

    Raises:
        ConfigError: ``path`` (or ``MOKSHA_CONFIG``) names a missing file, the
            file cannot be parsed (a settings line without ``=`` is named), or a
            value is not valid for its key.
    """
    environ = os.environ if environ is None else environ
    named_by = "code"
    if path is None and search:
        path = find_config_file(environ=environ)
        named_by = f"environment {_CONFIG_VARIABLE}" if environ.get(_CONFIG_VARIABLE) else "search"
    layers = [_read_ini(Path(path), named_by)] if path is not None else []
    layers.append(_environment_entries(environ))
    layers.append(_entries(overrides or {}, "code"))
    config = _assemble(layers)
    misspelt = tuple(
        Misspelling(variable, _ENVIRONMENT, meant)
        for variable in sorted(environ)
        if variable not in KNOWN_VARIABLES and (meant := likely_variable(variable)) is not None
    )
    if misspelt:
        config = dataclasses.replace(config, _misspelt_variables=misspelt)
    if warn:
        for misspelling in config.misspellings():
            log.warning("%s", misspelling)
    return config
