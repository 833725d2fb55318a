"""The AMQP backend's data: the broker address and the wire format, without I/O.

Broker address. ``amqp_broker`` accepts:

* an ``amqp://`` or ``amqps://`` URL, e.g.
  ``amqp://user:password@host:5672/vhost?heartbeat=30``; its query options
  are aio-pika's and aiormq's (``heartbeat``, ``name``, ``cafile``,
  ``certfile``, ``keyfile``, ``no_verify_ssl``, ``reconnect_interval``, ...)
  and are passed through untouched;
* the original Moksha form ``user/password@host[:port]`` (also ``host`` and
  ``host:port`` alone), which becomes ``amqp://user:password@host:port/``.
  Without a user, aiormq logs in as ``guest``/``guest``, RabbitMQ's default
  account (the one that only works from localhost).

Options that come from other configuration keys are declared in
:data:`CONFIG_OPTIONS` and added to the URL's query unless the URL already
sets them, so a URL always wins over a key.  Passwords never reach a log line
or a ``repr``: :class:`BrokerAddress` shows itself with the password masked
(``amqp://guest:***@host:5672/``).

Wire format (:func:`to_amqp` or :func:`to_properties`, :func:`from_amqp`):
routing key = topic, body = :attr:`Message.payload`, ``content_type``
``application/json`` or, when the payload is not JSON, ``application/octet-stream``; ``message_id``;
``timestamp`` in whole seconds (AMQP's resolution); user headers as AMQP
headers; persistent delivery mode.  Received header values become ``str``; a
missing id or timestamp becomes a new id or "now".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from pamqp.commands import Basic
from yarl import URL

from moksha.errors import ConfigError
from moksha.message import Message

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = [
    "CONFIG_OPTIONS",
    "BrokerAddress",
    "broker_address",
    "from_amqp",
    "parse_broker",
    "to_amqp",
    "to_properties",
]

DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}

CONFIG_OPTIONS: tuple[tuple[str, Callable[[Config], str]], ...] = (
    ("heartbeat", lambda config: str(config.amqp_heartbeat)),
    # aio-pika's robust connection waits this long between reconnection attempts.
    ("reconnect_interval", lambda config: f"{config.reconnect_delay:g}"),
)
"""URL query options filled from configuration keys: (option, value from the config)."""

# The original qpid-style address: [user[/password]@]host[:port], host may be [IPv6].
_SLASH_FORM = re.compile(
    r"(?:(?P<user>[^/@\s]+)(?:/(?P<password>[^@\s]*))?@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:/@\s\[\]]+)(?::(?P<port>\d{1,5}))?"
)
_EXPECTED = (
    "expected an amqp:// or amqps:// URL (amqp://user:password@host:5672/vhost) "
    "or the original user/password@host[:port] form"
)


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """A parsed broker address; prints and logs with the password masked.

    Attributes:
        url: the full URL aio-pika connects to, options included.
    """

    url: URL

    @property
    def display(self) -> str:
        """The URL without its password or options, for log lines and error messages."""
        url = self.url.with_query(None)
        if url.password is not None:
            url = url.with_password("***")
        return str(url)

    def scrub(self, text: str) -> str:
        """Return ``text`` with this address's password masked, for foreign error messages."""
        password = self.url.password
        return text.replace(password, "***") if password else text

    def __str__(self) -> str:
        return self.display

    def __repr__(self) -> str:
        return f"BrokerAddress({self.display!r})"


def parse_broker(value: str, options: Mapping[str, str] | None = None) -> BrokerAddress:
    """Parse an ``amqp_broker`` value (either spelling) into a :class:`BrokerAddress`.

    Args:
        value: the configured broker address.
        options: URL query options to add when the value does not set them.

    Returns:
        The address; its URL has a scheme, a host, a port and a path.

    Raises:
        ValueError: the value is neither a usable URL nor ``user/password@host[:port]``.
    """
    value = value.strip()
    url = _parse_url(value) if "://" in value else _parse_slash_form(value)
    missing = {name: text for name, text in (options or {}).items() if name not in url.query}
    return BrokerAddress(url.update_query(missing) if missing else url)


def broker_address(config: Config) -> BrokerAddress:
    """The broker address ``config`` names, with the options of :data:`CONFIG_OPTIONS`.

    Raises:
        ConfigError: ``amqp_broker`` is unset or cannot be parsed (names the key and its source).
    """
    if config.amqp_broker is None:
        raise ConfigError("is not set; the AMQP backend needs a broker", key="amqp_broker")
    options = {name: value(config) for name, value in CONFIG_OPTIONS}
    try:
        return parse_broker(config.amqp_broker, options)
    except ValueError as exc:
        raise ConfigError(
            str(exc), key="amqp_broker", source=config.source("amqp_broker")
        ) from None


def _parse_url(value: str) -> URL:
    try:
        url = URL(value)
        port = url.port  # yarl checks the port lazily
    except ValueError as exc:
        raise ValueError(f"{_EXPECTED}; this URL cannot be parsed ({exc})") from None
    if url.scheme not in DEFAULT_PORTS:
        raise ValueError(f"{_EXPECTED}; the scheme {url.scheme!r} is not one of them")
    if not url.host:
        raise ValueError(f"{_EXPECTED}; the URL names no host")
    if port is None:
        url = url.with_port(DEFAULT_PORTS[url.scheme])
    elif not 0 < port < 65536:
        raise ValueError(f"{_EXPECTED}; the port is not a number from 1 to 65535")
    if not url.path:
        url = url.with_path("/")  # aiormq reads an empty path as the default vhost too
    return url


def _parse_slash_form(value: str) -> URL:
    match = _SLASH_FORM.fullmatch(value)
    if match is None:
        raise ValueError(f"{_EXPECTED}; the value matches neither")
    port = int(match["port"] or DEFAULT_PORTS["amqp"])
    if not 0 < port < 65536:
        raise ValueError(f"{_EXPECTED}; the port is not a number from 1 to 65535")
    return URL.build(
        scheme="amqp",
        user=match["user"],
        password=match["password"] if match["user"] else None,
        host=match["host"].strip("[]"),
        port=port,
        path="/",
    )


def to_amqp(message: Message) -> aio_pika.Message:
    """The AMQP message carrying ``message`` (publish it with routing key = ``message.topic``)."""
    return aio_pika.Message(
        message.payload,
        headers=dict(message.headers),
        content_type=message.content_type,
        message_id=message.id,
        timestamp=message.timestamp,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def to_properties(message: Message) -> Basic.Properties:
    """The AMQP properties :func:`to_amqp` gives ``message``, built without an ``aio_pika.Message``.

    For :class:`~moksha.hub.backends.amqp_publisher.ConfirmedPublisher`, which
    publishes through aiormq; the body is :attr:`Message.payload`.
    """
    return Basic.Properties(
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT.value,
        headers=dict(message.headers),
        message_id=message.id,
        priority=0,  # as aio_pika.Message sends it: the same bytes on the wire
        timestamp=message.timestamp,
    )


TOPIC_HEADER = "moksha-topic"
"""The topic of a message sent straight to a queue (routing key = the queue's name)."""


def delivery_topic(delivery: AbstractIncomingMessage) -> str:
    """A delivery's topic: its routing key, unless a retry put back on its queue names one."""
    topic = (delivery.headers or {}).get(TOPIC_HEADER)
    if isinstance(topic, bytes):
        topic = topic.decode(errors="replace")
    return str(topic) if topic else delivery.routing_key or ""


def from_amqp(delivery: AbstractIncomingMessage) -> Message:
    """The :class:`Message` a delivery carries; its body is decoded on first access."""
    headers = {
        str(name): value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        for name, value in (delivery.headers or {}).items()
    }
    # A retry put back on one queue travels with its topic in a header (see AMQPBackend.requeue).
    topic = headers.pop(TOPIC_HEADER, None) or delivery.routing_key or ""
    return Message(
        topic,
        headers=headers,
        id=delivery.message_id,
        timestamp=delivery.timestamp,
        payload=delivery.body,
        content_type=delivery.content_type,
    )
