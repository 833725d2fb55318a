"""The :class:`Config`, and :func:`load_config` making one: defaults, file, environment, code.

Where the file and the environment's settings are read is
:mod:`moksha.config.sources`; the keys themselves are :mod:`moksha.config.keys`.
"""

from __future__ import annotations

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
from moksha.config.sources import (
    CONFIG_VARIABLE,
    Entry,
    entries,
    environment_entries,
    find_config_file,
    read_ini,
)
from moksha.config.spelling import ENVIRONMENT, Misspelling, likely_key, likely_variable
from moksha.errors import ConfigError

__all__ = ["Config", "Misspelling", "find_config_file", "load_config"]

log = logging.getLogger("moksha.config")

KNOWN_VARIABLES = frozenset({CONFIG_VARIABLE, *(key.env_var for key in KEYS)})
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
        return _assemble([entries(overrides, "code")], start=self)

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


def _assemble(layers: Iterable[list[Entry]], *, start: Config | None = None) -> Config:
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
        named_by = f"environment {CONFIG_VARIABLE}" if environ.get(CONFIG_VARIABLE) else "search"
    layers = [read_ini(Path(path), named_by)] if path is not None else []
    layers.append(environment_entries(environ))
    layers.append(entries(overrides or {}, "code"))
    config = _assemble(layers)
    misspelt = tuple(
        Misspelling(variable, ENVIRONMENT, meant)
        for variable in sorted(environ)
        if variable not in KNOWN_VARIABLES and (meant := likely_variable(variable)) is not None
    )
    if misspelt:
        config = dataclasses.replace(config, _misspelt_variables=misspelt)
    if warn:
        for misspelling in config.misspellings():
            log.warning("%s", misspelling)
    return config
