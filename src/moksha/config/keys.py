"""The declared configuration keys: names, parsers, defaults and documentation.

Each :class:`Key` turns a raw value (text from a file or the environment, or a
typed value from code) into its typed value, or raises :class:`BadValue`
saying what it expected.  :func:`reference_table` renders :data:`KEYS` as the
README's configuration reference.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["KEYS", "KEYS_BY_NAME", "KEY_ALIASES", "BadValue", "Key", "reference_table"]

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class BadValue(Exception):
    """Raised by a parser; carries what it wanted, e.g. ``a whole number >= 1``."""


Parse = Callable[[Any], Any]


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadValue("non-empty text")
    return value.strip()


def _optional_text(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise BadValue("text")
    return value.strip()


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, str | int) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise BadValue("true or false (or yes/no, on/off, 1/0)")


def _words(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(word for word in re.split(r"[,\s]+", value) if word)
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip())
    raise BadValue("a list of names, or one string of names separated by commas or spaces")


def _integer(low: int, high: int | None = None) -> Parse:
    wanted = f"a whole number >= {low}" if high is None else f"a whole number from {low} to {high}"

    def parse(value: Any) -> int:
        # ASCII digits and spaces only: \s and \d also match characters int() refuses
        # (a control character such as \x1f), which a fuzzer found raising ValueError.
        if isinstance(value, str) and re.fullmatch(r"[ \t\r\n]*[+-]?[0-9]+[ \t\r\n]*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadValue(wanted)
        if value < low or (high is not None and value > high):
            raise BadValue(wanted)
        return value

    return parse


def _seconds(value: Any) -> float:
    try:
        number = float(value) if isinstance(value, str | int | float) else math.nan
    except ValueError:
        number = math.nan
    if isinstance(value, bool) or not (0 < number < math.inf):
        raise BadValue("a number of seconds > 0")
    return number


def _seconds_or_zero(value: Any) -> float:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            if float(value) == 0:
                return 0.0
        except ValueError:
            pass
    try:
        return _seconds(value)
    except BadValue:
        raise BadValue("a number of seconds >= 0") from None


def _one_of(*choices: str) -> Parse:
    def parse(value: Any) -> str:
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        raise BadValue("one of " + ", ".join(repr(choice) for choice in choices))

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


# fmt: off
KEYS: tuple[Key, ...] = (
    Key("moksha.backends", "backends", _words, (),
        "Backend names to use; empty means chosen from the broker keys, memory when none."),
    Key("amqp_broker", "amqp_broker", _optional_text, None,
        "AMQP broker: an amqp:// or amqps:// URL, or the original user/password@host[:port]."),
    Key("amqp_exchange", "amqp_exchange", _text, "amq.topic",
        "AMQP topic exchange messages are published to and consumed from."),
    Key("amqp_prefetch", "amqp_prefetch", _integer(1), 100,
        "How many unacknowledged AMQP messages the broker may send ahead."),
    Key("stomp_uri", "stomp_uri", _optional_text, None,
        "STOMP broker(s) as host:port, several separated by commas for failover."),
    Key("stomp_broker", "stomp_broker", _optional_text, None,
        "STOMP broker host, used with stomp_port when stomp_uri is not set."),
    Key("stomp_port", "stomp_port", _integer(1, 65535), 61613, "STOMP broker port."),
    Key("stomp_user", "stomp_user", _optional_text, None, "STOMP login."),
    Key("stomp_pass", "stomp_pass", _optional_text, None, "STOMP passcode.", secret=True),
    Key("stomp_ssl_key", "stomp_ssl_key", _optional_text, None,
        "Path to the client key for STOMP over TLS."),
    Key("stomp_ssl_crt", "stomp_ssl_crt", _optional_text, None,
        "Path to the client certificate for STOMP over TLS."),
    Key("stomp_ack_mode", "stomp_ack_mode", _one_of("auto", "client-individual"), "auto",
        "STOMP subscription ack mode."),
    Key("stomp_send_explicit_nacks", "stomp_send_explicit_nacks", _boolean, True,
        "Send NACK frames for messages a consumer failed to handle."),
    Key("stomp_amqp_url", "stomp_amqp_url", _optional_text, None,
        "AMQP URL of the RabbitMQ behind the STOMP broker: STOMP group queues then follow "
        "the code (stale bindings removed) and moksha queues lists them."),
    Key("zmq_enabled", "zmq_enabled", _boolean, False, "Use the ZeroMQ backend."),
    Key("zmq_publish_endpoints", "zmq_publish_endpoints", _words, (),
        "ZeroMQ endpoints to publish on, e.g. tcp://*:6543.", aliases=("zmq_published_endpoints",)),
    Key("zmq_subscribe_endpoints", "zmq_subscribe_endpoints", _words, (),
        "ZeroMQ endpoints to subscribe to."),
    Key("zmq_subscribe_method", "zmq_subscribe_method", _one_of("connect", "bind"), "connect",
        "Whether ZeroMQ subscribers connect to or bind the subscribe endpoints."),
    Key("zmq_strict", "zmq_strict", _boolean, False,
        "False (the original's default): a ZeroMQ pattern without wildcards also matches the "
        "topics it prefixes; true: patterns follow the AMQP rules exactly, like every backend."),
    Key("zmq_metadata_frame", "zmq_metadata_frame", _boolean, False,
        "Send a third ZeroMQ frame with the message's id, timestamp and headers; needed to "
        "bridge ZeroMQ with other backends. False: the original's two frames [topic, json]."),
    Key("mqtt_url", "mqtt_url", _optional_text, None,
        "MQTT broker: mqtt://user:password@host:1883 (mqtts:// for TLS); selects the mqtt "
        "backend (MQTT 5, QoS 1)."),
    Key("mqtt_node", "mqtt_node", _optional_text, None,
        "This hub's part of its MQTT client ids (moksha:<group>:<node>): hubs sharing a "
        "consumer group need different ones; the host name when unset."),
    Key("mqtt_session_expiry", "mqtt_session_expiry", _integer(1), 86400,
        "Seconds the MQTT broker keeps a consumer group's session, and what is queued for "
        "it, while no hub of the group is connected."),
    Key("mqtt_inflight", "mqtt_inflight", _integer(1, 65535), 100,
        "How many unacknowledged MQTT messages the broker may send ahead (Receive Maximum)."),
    Key("nats_url", "nats_url", _optional_text, None,
        "NATS server(s): nats://user:password@host:4222 (tls:// for TLS), several separated "
        "by commas; selects the nats backend."),
    Key("nats_stream", "nats_stream", _text, "moksha",
        "Name of the JetStream stream holding the messages of nats_stream_subjects."),
    Key("nats_stream_subjects", "nats_stream_subjects", _words, (),
        "NATS subjects (* and > wildcards) kept in the JetStream stream, e.g. org.example.>; "
        "consumer groups on them are durable with acks. Empty: core NATS only (no durability)."),
    Key("nats_stream_max_age", "nats_stream_max_age", _seconds, 86400.0,
        "Seconds the JetStream stream keeps a message no consumer group has acknowledged."),
    Key("nats_max_deliver", "nats_max_deliver", _integer(1), 10,
        "Deliveries of one JetStream message before it goes to the dead-letter topic."),
    Key("nats_ack_wait", "nats_ack_wait", _seconds, 60.0,
        "Seconds JetStream waits for a delivery's ack before it delivers it again."),
    Key("nats_inflight", "nats_inflight", _integer(1), 100,
        "How many unacknowledged JetStream messages a consumer group fetches ahead."),
    Key("moksha.workers_per_consumer", "workers_per_consumer", _integer(1), 1,
        "How many messages each consumer handles at once."),
    Key("moksha.blocking_mode", "blocking_mode", _boolean, True,
        "Publish waits for the backend to accept the message."),
    Key("moksha.consumer_backlog", "consumer_backlog", _integer(1), 10000,
        "Messages queued per consumer before the hub applies back-pressure."),
    Key("moksha.outgoing_queue", "outgoing_queue", _integer(1), 10000,
        "Messages send_message and plugins may queue per hub before callers wait for room."),
    Key("moksha.retry_backlog", "retry_backlog", _integer(1), 10000,
        "Failed messages per consumer waiting for their retry (outside the backlog); when "
        "full, deliveries to that consumer wait."),
    Key("moksha.max_retries", "max_retries", _integer(0), 3,
        "How often a message is retried after its consumer fails."),
    Key("moksha.shutdown_timeout", "shutdown_timeout", _seconds, 5.0,
        "Seconds the hub waits for consumers to finish when stopping."),
    Key("moksha.reconnect_delay", "reconnect_delay", _seconds, 0.5,
        "First wait before reconnecting to a broker; doubles per failed attempt."),
    Key("moksha.reconnect_max_delay", "reconnect_max_delay", _seconds, 10.0,
        "Longest wait between two reconnection attempts."),
    Key("moksha.publish_timeout", "publish_timeout", _seconds, 30.0,
        "How long a publish may wait for a broker connection before it fails."),
    Key("moksha.retry_delay", "retry_delay", _seconds, 0.1,
        "Pause before consuming a failed message again; doubles with each attempt."),
    Key("moksha.dead_letter_topic", "dead_letter_topic", _text, "{topic}.dead",
        "Where a message goes once its retries are used up; {topic} is its topic."),
    Key("moksha.queue_depth_interval", "queue_depth_interval", _seconds_or_zero, 10.0,
        "Seconds between two reads of each consumer's broker queue depth (dashboard, "
        "/metrics, /ready); 0: never read."),
    Key("moksha.queue_depth_limit", "queue_depth_limit", _integer(0), 10000,
        "/ready says degraded (still 200) while a consumer's broker queue holds more "
        "messages than this; 0: never."),
    Key("moksha.schema.mode", "schema_mode", _one_of("enforce", "warn", "off"), "enforce",
        "What a message failing its topic's schema does: enforce (publish raises, a "
        "received one goes to the dead letters), warn (logged, goes on) or off."),
    Key("moksha.schema.files", "schema_files", _words, (),
        "JSON Schema files of message bodies, each with \"x-moksha-topic\" (a topic or "
        "pattern) and a \"title\" (its name); checked like installed schema classes."),
    Key("amqp_fedora_headers", "amqp_fedora_headers", _boolean, True,
        "Write fedora-messaging's AMQP headers and properties (schema, severity, sent-at, "
        "fedora_messaging_user_* ...) on every AMQP publish."),
    Key("amqp_topic_prefix", "amqp_topic_prefix", _optional_text, None,
        "Put in front of each topic published on AMQP (fedora-messaging's topic_prefix, "
        "e.g. org.fedoraproject.prod)."),
    Key("amqp_durable_queues", "amqp_durable_queues", _boolean, True,
        "One durable queue per consumer class (shared work, kept while down); false: "
        "exclusive auto-delete queues (fan-out, nothing kept)."),
    Key("amqp_queue_prefix", "amqp_queue_prefix", _text, "moksha",
        "Prefix of the queue names the hub declares."),
    Key("amqp_heartbeat", "amqp_heartbeat", _integer(0), 60,
        "AMQP heartbeat interval in seconds (0 disables)."),
    Key("stomp_prefetch", "stomp_prefetch", _integer(1), 100,
        "prefetch-count of client-individual STOMP subscriptions (unacked messages in flight)."),
    Key("stomp_destination_prefix", "stomp_destination_prefix", _text, "/topic/",
        "Prefix turning a topic into a STOMP destination."),
    Key("stomp_vhost", "stomp_vhost", _text, "/",
        "Virtual host sent as the STOMP host header (RabbitMQ: '/')."),
    Key("stomp_heartbeat", "stomp_heartbeat", _integer(0), 10000,
        "STOMP heart-beat interval in milliseconds (0 disables)."),
    Key("stomp_persistent", "stomp_persistent", _boolean, True,
        "STOMP messages are sent persistent:true (a durable queue keeps them across a broker "
        "restart); a persistent header on a message overrides it."),
    Key("zmq_hwm", "zmq_hwm", _integer(0), 10000,
        "ZeroMQ high-water mark of each socket, in messages (0: no limit)."),
    Key("zmq_reconnect_ivl", "zmq_reconnect_ivl", _integer(0), 100,
        "ZeroMQ reconnect interval in milliseconds."),
    Key("zmq_reconnect_ivl_max", "zmq_reconnect_ivl_max", _integer(0), 5000,
        "ZeroMQ longest reconnect interval in milliseconds (backoff cap)."),
    Key("zmq_tcp_keepalive", "zmq_tcp_keepalive", _boolean, False,
        "Enable TCP keepalive on ZeroMQ sockets."),
    Key("zmq_tcp_keepalive_idle", "zmq_tcp_keepalive_idle", _integer(1), 60,
        "Seconds of idleness before the first TCP keepalive probe."),
    Key("zmq_tcp_keepalive_intvl", "zmq_tcp_keepalive_intvl", _integer(1), 10,
        "Seconds between TCP keepalive probes."),
    Key("zmq_tcp_keepalive_cnt", "zmq_tcp_keepalive_cnt", _integer(1), 5,
        "Unanswered TCP keepalive probes before the connection is dropped."),
    Key("redis_bus_url", "redis_bus_url", _optional_text, None,
        "Redis as the message bus: redis://host:6379/0 (rediss:// for TLS); apart from the "
        "web cache's moksha.cache.url."),
    Key("redis_bus_prefix", "redis_bus_prefix", _text, "moksha:",
        "Start of the Redis keys the bus creates (its stream, group registry, retry streams)."),
    Key("redis_bus_maxlen", "redis_bus_maxlen", _integer(1), 100000,
        "Entries the Redis stream of consumer groups keeps, about (older ones are trimmed)."),
    Key("redis_bus_claim_idle", "redis_bus_claim_idle", _seconds, 30.0,
        "Seconds a Redis stream entry may stay unacknowledged before another hub takes it over."),
    Key("redis_bus_max_deliveries", "redis_bus_max_deliveries", _integer(1), 5,
        "Deliveries of one Redis stream entry without an ack before it is dead-lettered."),
    Key("amqp1_url", "amqp1_url", _optional_text, None,
        "AMQP 1.0 broker: amqp://user:pass@host:5672 (amqps:// for TLS); RabbitMQ needs its "
        "rabbitmq_amqp1_0 plugin."),
    Key("amqp1_prefetch", "amqp1_prefetch", _integer(1), 500,
        "Credit of each AMQP 1.0 receiving link: messages it may have on the way at once."),
    Key("moksha.livesocket.backend", "livesocket_backend", _optional_text, None,
        "Live socket server to run, e.g. websocket; none when unset."),
    Key("moksha.livesocket.websocket.port", "livesocket_websocket_port", _integer(0, 65535), 9998,
        "Port of the WebSocket live socket; 0 picks a free one."),
    Key("moksha.livesocket.websocket.interface", "livesocket_websocket_interface",
        _text, "127.0.0.1", "Interface the WebSocket live socket listens on."),
    Key("moksha.livesocket.max_frame_bytes", "livesocket_max_frame_bytes", _integer(1), 65536,
        "Largest frame a live-socket client may send, in bytes (larger: closed with 1009)."),
    Key("moksha.livesocket.max_subscriptions", "livesocket_max_subscriptions", _integer(1), 100,
        "Most patterns one live-socket client may subscribe to."),
    Key("moksha.livesocket.max_messages_per_second", "livesocket_max_messages_per_second",
        _seconds, 20.0, "Frames per second a live-socket client may send (bursts of twice that)."),
    Key("moksha.livesocket.publish_allow", "livesocket_publish_allow", _words, (),
        "Topic patterns browsers may publish to; empty: browsers cannot publish."),
    Key("moksha.livesocket.websocket.client2server", "livesocket_client2server", _boolean, False,
        "The original's switch: true lets browsers publish to every topic."),
    Key("moksha.livesocket.protected", "livesocket_protected", _words, (),
        "Topic patterns only clients with a token granting them may see or publish to."),
    Key("moksha.livesocket.token_secret", "livesocket_token_secret", _optional_text, None,
        "HS256 secret (32 bytes or more) that signs live-socket tokens.", secret=True),
    Key("moksha.livesocket.allowed_origins", "livesocket_allowed_origins", _words, (),
        "Origins (https://host:port) whose pages may connect; the hub's own always may."),
    Key("moksha.livesocket.slow_policy", "livesocket_slow_policy",
        _one_of("conflate", "disconnect"), "conflate",
        "A client whose queue is full: keep the newest message per topic, or disconnect it."),
    Key("moksha.livesocket.queue_size", "livesocket_queue_size", _integer(1), 1000,
        "Frames waiting for one live-socket client at most."),
    Key("moksha.livesocket.history.size", "livesocket_history_size", _integer(1), 100,
        "Messages kept per topic so reconnecting clients get what they missed."),
    Key("moksha.livesocket.history.age", "livesocket_history_age", _seconds, 300.0,
        "Seconds a message is kept for reconnecting clients."),
    Key("moksha.livesocket.history.url", "livesocket_history_url", _optional_text, None,
        "Unset: history in memory; sqlite:///path keeps it across restarts."),
    Key("moksha.cluster.url", "cluster_url", _optional_text, None,
        "redis://host:6379/0 or postgresql://user:pass@host/db: the store several moksha "
        "start nodes share (history, event ids, heartbeats, leaders); unset: one node.",
        secret=True),
    Key("moksha.cluster.prefix", "cluster_prefix", _text, "moksha",
        "Names of the cluster's keys (Redis) or tables (PostgreSQL) begin with this."),
    Key("moksha.cluster.ttl", "cluster_ttl", _seconds, 4.0,
        "Seconds a node's heartbeat and a leader's lock last without renewal."),
    Key("moksha.livesocket.bind_on_demand", "livesocket_bind_on_demand", _boolean, False,
        "Bind on the broker only the patterns live-socket clients ask for (# only when one "
        "does), unbinding when the last leaves; in a cluster one node still records all."),
    Key("moksha.dashboard.layout", "dashboard_layout", _optional_text, None,
        "JSON or TOML file laying out the dashboard's widgets; unset: the built-in layout."),
    Key("moksha.dashboard.demo", "dashboard_demo", _boolean, True,
        "moksha start runs the demo producers (this machine's load, memory, network)."),
    Key("moksha.dashboard.title", "dashboard_title", _text, "Moksha",
        "The dashboard's title and heading."),
    Key("moksha.dashboard.columns", "dashboard_columns", _integer(1, 12), None,
        "Grid columns of the dashboard on a wide screen; unset: the layout file's, else 3."),
    Key("moksha.livesocket.url", "livesocket_url", _optional_text, None,
        "Base URL of a live socket another process serves (pages connect there)."),
    Key("moksha.web.trusted_origins", "web_trusted_origins", _words, (),
        "Other origins (https://host:port) whose pages may send POST/PUT/PATCH/DELETE requests "
        "here; cross-site ones are refused."),
    Key("moksha.debug", "debug", _boolean, False,
        "Error pages show the traceback: for development only."),
    Key("moksha.session.secret", "session_secret", _optional_text, None,
        "Signs the session cookie; unset: a random key per process (sessions end on restart).",
        secret=True),
    Key("moksha.cache.url", "cache_url", _optional_text, None,
        "redis://host:6379/0 for a Redis cache; unset: in memory."),
    Key("moksha.cache.size", "cache_size", _integer(1), 1024,
        "Entries the in-memory cache keeps."),
    Key("moksha.auth.header", "auth_header", _optional_text, None,
        "Header naming the user, set by an authenticating reverse proxy (e.g. X-Remote-User)."),
    Key("moksha.auth.groups_header", "auth_groups_header", _optional_text, None,
        "Header listing the user's groups, comma-separated, set by that proxy."),
    Key("moksha.auth.login_url", "auth_login_url", _optional_text, None,
        "Where anonymous visitors of protected pages are sent; unset: 401."),
    Key("moksha.feedaggregator", "feedaggregator", _boolean, False,
        "The hub's feed stream polls feeds and publishes their new entries on moksha.feeds.<id>."),
    Key("feed.urls", "feed_urls", _words, (),
        "Feed URLs the stream polls, separated by commas or spaces."),
    Key("feed.file", "feed_file", _text, "feeds.txt",
        "File of more feed URLs, one a line (# comments), managed by moksha feeds add/remove."),
    Key("feed_cache", "feed_cache", _text, "sqlite:///moksha-feeds.sqlite",
        "Database (SQLAlchemy URL) keeping parsed feeds and the ids of entries published."),
    Key("feed.max_age", "feed_max_age", _seconds_or_zero, 300.0,
        "Seconds a cached feed is used without asking its server again (0: ask every time)."),
    Key("feed.poll_frequency", "feed_poll_frequency", _seconds, 300.0,
        "Seconds between two polls of the feed stream."),
    Key("feed.deferred_groups", "feed_deferred_groups", _integer(1), 10,
        "Feeds fetched at the same time, at most."),
    Key("feed.timeout", "feed_timeout", _seconds, 30.0,
        "Seconds one feed fetch may take, from connecting to the last byte."),
    Key("feed.max_bytes", "feed_max_bytes", _integer(1), 10485760,
        "Largest feed document accepted, in bytes."),
    Key("feed.max_backoff", "feed_max_backoff", _seconds, 3600.0,
        "Longest wait before a failing feed is tried again."),
    Key("moksha.feeds.allow", "feeds_allow", _words, (),
        "URL patterns (https://*.example.org/*) of feeds a request may ask the server to "
        "fetch, e.g. /widgets/feed_entries?url=; configured feeds always may, others never."),
    Key("moksha.feeds.allow_private", "feeds_allow_private", _boolean, False,
        "Feeds a request names (and moksha.feeds.allow admits) may be on loopback, "
        "link-local or private addresses."),
    Key("moksha.monitoring.interval", "monitoring_interval", _seconds, 10.0,
        "Seconds between two reports on the monitoring socket."),
    Key("moksha.logging.format", "logging_format", _one_of("text", "json"), "text",
        "Log lines as text, or as one JSON object each (for journald, Loki, ...)."),
    Key("moksha.logging.levels", "logging_levels", _optional_text, None,
        "Levels per logger, e.g. 'moksha.hub=DEBUG, aio_pika=WARNING' ('root' names the root)."),
    Key("moksha.monitoring.socket", "monitoring_socket", _optional_text, None,
        "Endpoint the hub publishes monitoring data on."),
    Key("moksha.monitoring.socket.mode", "monitoring_socket_mode", _optional_text, None,
        "File mode of the monitoring socket, e.g. 770."),
    Key("moksha.archive", "archive", _boolean, False,
        "Record every message (moksha.archive.topics) in the archive; /archive/ on moksha start "
        "searches it (datagrepper v2) and shows dead letters."),
    Key("moksha.archive.url", "archive_url", _optional_text, None,
        "Archive database (SQLAlchemy URL, postgresql+psycopg://... for real deployments); "
        "unset: sqlite:///<moksha.data_dir>/archive.sqlite."),
    Key("moksha.archive.topics", "archive_topics", _words, ("#",),
        "Topic patterns recorded in the archive (dead letters are always recorded)."),
    Key("moksha.archive.keep_days", "archive_keep_days", _integer(0), 0,
        "Days a message stays in the archive; 0: forever."),
    Key("moksha.archive.batch_size", "archive_batch_size", _integer(1), 200,
        "Messages the archive writes in one transaction at most (and records at a time)."),
    Key("moksha.archive.topic_prefix", "archive_topic_prefix", _optional_text, None,
        "Topic prefix of this bus (org.fedoraproject.prod): a message's category is the word "
        "after it; unset or not matching: the first word."),
    Key("moksha.archive.category_word", "archive_category_word", _integer(0), None,
        "Index (from 0) of the topic word that is a message's category, instead of the word "
        "after moksha.archive.topic_prefix."),
    Key("moksha.data_dir", "data_dir", _text, ".",
        "Directory of the files Moksha makes by default (app databases: <name>.sqlite); "
        "relative to the working directory (the systemd units': /var/lib/moksha)."),
)
# fmt: on

KEYS_BY_NAME = {key.name: key for key in KEYS}
KEY_ALIASES = {alias: key.name for key in KEYS for alias in key.aliases}


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
