"""What the STOMP backend reads from the config, and how a Message looks on the wire.

Options (keys of :mod:`moksha.config`):

``stomp_uri``
    ``host:port[,host:port...]``: brokers to fail over between, tried in order
    and round-robin on reconnection (``[::1]:61613`` for IPv6; a ``stomp://``,
    ``tcp://`` or ``ssl://`` prefix is accepted and ignored).  When unset,
    ``stomp_broker`` and ``stomp_port`` name the one broker.
``stomp_user`` / ``stomp_pass``
    ``login`` / ``passcode`` of the CONNECT frame.  The passcode is never logged.
``stomp_vhost``
    the CONNECT ``host`` header; RabbitMQ reads it as the virtual host (``/``).
``stomp_ssl_key`` / ``stomp_ssl_crt``
    both set: TLS with this client key and certificate, verifying the broker
    against the system's CA store and its host name.
``stomp_heartbeat``
    milliseconds; heart-beats offered and asked for, both ways (0: none).
``stomp_ack_mode``
    ``auto`` (the broker forgets a message once sent) or ``client-individual``
    (acked once the handler returned).
``stomp_send_explicit_nacks``
    with ``client-individual``: NACK (requeue) a message whose handler raised;
    otherwise it stays unacked, holding a prefetch slot, until the connection
    closes and the broker redelivers it.
``stomp_destination_prefix``
    destination = prefix + topic (``/topic/``).
``stomp_prefetch``
    the ``prefetch-count`` of ``client-individual`` subscriptions.
``stomp_persistent``
    send ``persistent:true`` (RabbitMQ: delivery mode 2, so a durable queue
    keeps the message across a broker restart, as AMQP publishes are kept).
    A message's own ``persistent`` header (``true``/``false``, e.g. ``moksha
    send -H persistent=false``) decides for that message.

Wire format (RabbitMQ's STOMP plugin maps these headers to and from AMQP
properties, so AMQP clients of ``amq.topic`` see the same message):

=====================  ============================================
STOMP header           Message / AMQP
=====================  ============================================
``destination``        ``/topic/<topic>`` / exchange ``amq.topic``, routing key
``amqp-message-id``    ``message.id`` / ``message_id`` property
``timestamp``          ``int(message.timestamp_s)`` / ``timestamp`` property (seconds)
``content-type``       ``application/json`` / ``content_type`` property
``persistent``         ``stomp_persistent`` or the message's header / ``delivery_mode`` 2
anything else          ``message.headers`` / AMQP headers (strings)
body                   ``message.payload``
=====================  ============================================

Header names RabbitMQ reads as AMQP properties or frame controls
(:data:`RESERVED_HEADERS`, but for ``persistent``) cannot be user headers: publishing one raises
:class:`~moksha.errors.MessageError` rather than let the broker reject the
frame.  ``content-length`` is sent only when the payload holds a NUL byte,
because RabbitMQ copies it into the AMQP headers.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from moksha.errors import ConfigError, MessageError
from moksha.message import Message

if TYPE_CHECKING:
    from moksha.config import Config
    from moksha.hub.backends.stomp_protocol import Frame

__all__ = [
    "RESERVED_HEADERS",
    "Broker",
    "StompOptions",
    "message_from_frame",
    "send_headers",
]

JSON = "application/json"
PERSISTENT = "persistent"

# Read by RabbitMQ as AMQP properties (see rabbit_stomp_util:message_properties)
# or by STOMP itself; a user header with one of these names would be swallowed
# or make the broker close the connection (``priority:high`` does).
RESERVED_HEADERS = frozenset(
    {"destination", "receipt", "transaction", "content-length", "content-type"}
    | {"content-encoding", "amqp-message-id", "timestamp", "persistent", "priority"}
    | {"correlation-id", "reply-to", "expiration", "type", "user-id", "app-id"}
)
# Added by the broker to a MESSAGE frame; not the publisher's headers.
_DELIVERY_HEADERS = frozenset({"subscription", "message-id", "ack", "redelivered"})
_NOT_USER_HEADERS = RESERVED_HEADERS | _DELIVERY_HEADERS
_SCHEMES = ("stomp", "stomp+ssl", "tcp", "ssl")
TOPIC_HEADER = "moksha-topic"
"""The topic of a message sent straight to a queue (its destination names the queue)."""
_MILLISECOND_STAMPS = 10**11  # a timestamp above this (year 5138) is in milliseconds


@dataclass(frozen=True, slots=True)
class Broker:
    """One broker address."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, kw_only=True)
class StompOptions:
    """The STOMP settings of a :class:`~moksha.config.Config`, checked once."""

    brokers: tuple[Broker, ...]
    login: str | None
    passcode: str | None = field(repr=False)
    vhost: str
    heartbeat_ms: int
    ack_mode: str
    explicit_nacks: bool
    prefix: str
    prefetch: int
    persistent: bool = True
    ssl: ssl.SSLContext | None = field(repr=False)

    @property
    def client_acks(self) -> bool:
        """Whether deliveries are acked by us (``client-individual``) rather than on send."""
        return self.ack_mode != "auto"

    @classmethod
    def from_config(cls, config: Config) -> StompOptions:
        """Read the options from ``config``.

        Raises:
            ConfigError: a broker address or the TLS files are wrong.
        """
        brokers, login, passcode = _brokers(config)
        return cls(
            brokers=brokers,
            login=config.stomp_user or login,
            passcode=config.stomp_pass or passcode,
            vhost=config.stomp_vhost,
            heartbeat_ms=config.stomp_heartbeat,
            ack_mode=config.stomp_ack_mode,
            explicit_nacks=config.stomp_send_explicit_nacks,
            prefix=config.stomp_destination_prefix,
            prefetch=config.stomp_prefetch,
            persistent=config.stomp_persistent,
            ssl=_ssl_context(config),
        )


def _brokers(config: Config) -> tuple[tuple[Broker, ...], str | None, str | None]:
    """The brokers, and credentials if a ``user:pass@`` was written into ``stomp_uri``."""
    if not config.stomp_uri:
        if not config.stomp_broker:
            raise ConfigError("set stomp_uri (host:port) or stomp_broker", key="stomp_uri")
        return (Broker(config.stomp_broker, config.stomp_port),), None, None
    brokers, login, passcode = [], None, None
    for item in config.stomp_uri.split(","):
        text = item.strip()
        if not text:
            continue
        scheme, sep, rest = text.partition("://")
        if sep and scheme.lower() not in _SCHEMES:
            raise ConfigError(
                f"{scheme}:// is not a STOMP address; write host:port", key="stomp_uri"
            )
        try:
            parts = urlsplit("//" + (rest if sep else text))
            host, port = parts.hostname, parts.port or config.stomp_port
        except ValueError as exc:
            raise ConfigError(f"{text!r} is not host:port ({exc})", key="stomp_uri") from None
        if not host:
            raise ConfigError(f"{text!r} has no host; write host:port", key="stomp_uri")
        brokers.append(Broker(host, port))
        login, passcode = login or parts.username, passcode or parts.password
    if not brokers:
        raise ConfigError("lists no broker; write host:port[,host:port]", key="stomp_uri")
    return tuple(brokers), login, passcode


def _ssl_context(config: Config) -> ssl.SSLContext | None:
    key, crt = config.stomp_ssl_key, config.stomp_ssl_crt
    if not key and not crt:
        return None
    if not (key and crt):
        missing = "stomp_ssl_crt" if key else "stomp_ssl_key"
        raise ConfigError("STOMP over TLS needs both stomp_ssl_key and stomp_ssl_crt", key=missing)
    context = ssl.create_default_context()  # verifies the broker against the system CAs
    try:
        context.load_cert_chain(certfile=crt, keyfile=key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the client certificate {crt} with key {key}: {exc}", key="stomp_ssl_crt"
        ) from exc
    return context


def destination(prefix: str, topic: str) -> str:
    """The destination of ``topic``; ``/`` is escaped as RabbitMQ expects."""
    return prefix + (topic.replace("/", "%2F") if "/" in topic else topic)


def send_headers(message: Message, *, persistent: bool = True) -> dict[str, str]:
    """The SEND headers carrying ``message``'s id, timestamp, content type and headers.

    Args:
        message: the message to send.
        persistent: send ``persistent:true`` unless the message's own
            ``persistent`` header says ``false``.

    Raises:
        MessageError: a user header has a reserved name (:data:`RESERVED_HEADERS`),
            or the ``persistent`` header is neither ``true`` nor ``false``.
    """
    user = dict(message.headers)
    chosen = user.pop(PERSISTENT, None)
    if not RESERVED_HEADERS.isdisjoint(user):
        names = ", ".join(sorted(RESERVED_HEADERS.intersection(user)))
        raise MessageError(
            f"the STOMP backend cannot send the header(s) {names} of a message on "
            f"{message.topic!r}: STOMP or RabbitMQ reads them as message properties; "
            "rename them"
        )
    if chosen is not None:
        if chosen.strip().lower() not in ("true", "false"):
            raise MessageError(
                f"the persistent header of a message on {message.topic!r} is {chosen!r}; "
                "write persistent=true or persistent=false"
            )
        persistent = chosen.strip().lower() == "true"
    headers = {
        "content-type": _content_type(message),
        "amqp-message-id": message.id,
        "timestamp": str(int(message.timestamp_s)),
    }
    if persistent:  # RabbitMQ reads a missing header as not persistent
        headers[PERSISTENT] = "true"
    headers.update(user)
    return headers


def _content_type(message: Message) -> str:
    # Message does not say yet whether its payload is JSON or raw; a
    # ``content_type`` attribute is proposed, and read here once it exists.
    found = getattr(message, "content_type", None)
    return found if isinstance(found, str) and found else JSON


def message_from_frame(frame: Frame, prefix: str) -> Message:
    """Build the :class:`Message` a MESSAGE frame carries; its body is decoded lazily."""
    headers: Mapping[str, str] = frame.headers
    topic = headers.get("destination", "")
    if topic.startswith(prefix):
        topic = topic[len(prefix) :]
    if "%" in topic:  # RabbitMQ escapes '/', '%' and non-ASCII bytes of routing keys
        topic = unquote(topic)
    user = {k: v for k, v in headers.items() if k not in _NOT_USER_HEADERS}
    # A retry put back on one queue travels with its topic in a header (StompBackend.requeue).
    topic = user.pop(TOPIC_HEADER, "") or topic
    return Message(
        topic,
        headers=user,
        id=headers.get("amqp-message-id") or headers.get("message-id"),
        timestamp=_timestamp(headers.get("timestamp")),
        payload=frame.body,
    )


def _timestamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        stamp = float(value)
    except ValueError:
        return None  # not ours to reject: the message is stamped on arrival
    # Brokers other than RabbitMQ (ActiveMQ) stamp messages in milliseconds.
    return stamp / 1000 if stamp > _MILLISECOND_STAMPS else stamp
