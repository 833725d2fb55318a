"""An AsyncAPI 3.0 document describing what a Moksha deployment sends and receives.

* ``servers``: each configured broker, and the live socket (WebSocket, with its
  token scheme when topics are protected);
* ``channels``: one per topic or pattern that a schema, a consumer, a producer
  or the live socket's policy names, with the messages whose schema covers it;
* ``operations``: ``receive`` for each consumer, ``send`` for each producer that
  declares ``topic`` or ``messages``, and the browsers' ``send`` where
  ``moksha.livesocket.publish_allow`` lets them publish;
* ``components.messages``: one per schema, its payload the body's JSON Schema.

AsyncAPI has no wildcards: a channel whose address is a pattern says so in its
description (``*`` one word, ``#`` zero or more), and its address is the pattern
as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from moksha import __version__
from moksha.config import Config
from moksha.hub.backends.amqp_options import broker_address
from moksha.livesocket.policy import LiveSocketPolicy
from moksha.schema.registry import Schema, SchemaRegistry
from moksha.topics import ANY_WORDS, ONE_WORD, matches, split, topics_of

__all__ = ["ASYNCAPI_VERSION", "asyncapi_document"]

ASYNCAPI_VERSION = "3.0.0"

_WILDCARD_NOTE = (
    "This address is a Moksha topic pattern, not one topic: '*' matches exactly one "
    "dot-separated word and '#' zero or more words (AMQP's rules, on every backend). "
    "AsyncAPI has no wildcards, so the pattern is given as written."
)


def asyncapi_document(
    config: Config,
    schemas: SchemaRegistry,
    consumers: Sequence[type[Any]] = (),
    producers: Sequence[type[Any]] = (),
    livesocket_url: str | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of a deployment.

    Args:
        config: the configuration (brokers, live-socket policy).
        schemas: the schemas known (installed and declared).
        consumers: the consumer classes that run (their ``topic`` and ``messages``).
        producers: the producer classes that run (``topic`` / ``messages`` when declared).
        livesocket_url: where the live socket listens (``http://host:port``), if it runs.
    """
    schemas = SchemaRegistry(schemas)  # a copy: the plugins' declared classes join it
    for cls in (*consumers, *producers):
        for message_cls in getattr(cls, "messages", None) or ():
            try:
                schemas.add_class(message_cls)
            except TypeError:
                continue  # not a schema: the hub refuses such a plugin, with the reason
    builder = _Builder(config, schemas)
    for cls in consumers:
        builder.operation("receive", cls, _patterns(cls))
    for cls in producers:
        patterns = _patterns(cls) or [s.topic for s in _declared(cls, schemas) if s.topic]
        if patterns:
            builder.operation("send", cls, patterns)
    for schema in schemas:
        if schema.topic:
            builder.channel(schema.topic)
    if livesocket_url is not None:
        builder.livesocket(livesocket_url)
    return builder.document()


def _patterns(cls: type[Any]) -> list[str]:
    topic = getattr(cls, "topic", None)
    return topics_of(topic) if isinstance(topic, str | list | tuple) else []


def _declared(cls: type[Any], schemas: SchemaRegistry) -> list[Schema]:
    found = []
    for message_cls in getattr(cls, "messages", None) or ():
        name = schemas.name_of(message_cls)
        if name is not None:
            found.append(schemas.by_name[name])
    return found


def _key(text: str) -> str:
    """A component key AsyncAPI accepts (``^[A-Za-z0-9.\\-_]+$``)."""
    text = text.replace("*", "star").replace("#", "hash")
    return re.sub(r"[^A-Za-z0-9._-]", "_", text) or "_"


def _is_pattern(topic: str) -> bool:
    words = split(topic)
    return ONE_WORD in words or ANY_WORDS in words


class _Builder:
    def __init__(self, config: Config, schemas: SchemaRegistry) -> None:
        self.config = config
        self.schemas = schemas
        self.servers: dict[str, Any] = self._brokers()
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.security: dict[str, Any] = {}

    def _brokers(self) -> dict[str, Any]:
        servers: dict[str, Any] = {}
        config = self.config
        if config.amqp_broker:
            url = broker_address(config).url
            servers["amqp"] = {
                "host": f"{url.host}:{url.port}",
                "protocol": "amqps" if url.scheme == "amqps" else "amqp",
                "pathname": url.path or "/",
                "description": f"RabbitMQ (AMQP 0-9-1), exchange {config.amqp_exchange}; "
                "routing key = topic; fedora-messaging's headers.",
            }
        if config.stomp_uri or config.stomp_broker:
            host = config.stomp_uri or f"{config.stomp_broker}:{config.stomp_port}"
            servers["stomp"] = {
                "host": host.split(",")[0].strip(),
                "protocol": "stomp",
                "description": "STOMP 1.2; destination /topic/<topic>.",
            }
        if config.zmq_enabled:
            for i, endpoint in enumerate(config.zmq_publish_endpoints):
                servers[f"zeromq{i}"] = {
                    "host": endpoint.removeprefix("tcp://"),
                    "protocol": "zeromq",
                    "description": "ZeroMQ PUB: frames [topic, JSON body(, headers)].",
                }
        if not servers:
            servers["memory"] = {
                "host": "localhost",
                "protocol": "moksha-memory",
                "description": "The embedded in-memory bus of one hub process.",
            }
        return servers

    def _schemas_for(self, pattern: str) -> list[Schema]:
        """Schemas whose topic this pattern (or topic) may carry."""
        found = []
        for schema in self.schemas:
            topic = schema.topic
            if not topic:
                continue
            if topic == pattern or matches(pattern, topic) or matches(topic, pattern):
                found.append(schema)
        return found

    def message(self, schema: Schema) -> str:
        key = _key(schema.name)
        if key not in self.messages:
            doc = (schema.cls.__doc__ or "").strip()
            entry: dict[str, Any] = {
                "name": schema.name,
                "title": schema.cls.__qualname__,
                "contentType": "application/json",
                "payload": {
                    "schemaFormat": _schema_format(schema.body_schema),
                    "schema": schema.body_schema,
                },
            }
            if doc:
                entry["description"] = doc
            if schema.package:
                entry["x-moksha-package"] = schema.package
            self.messages[key] = entry
        return key

    def channel(self, pattern: str, servers: Iterable[str] | None = None) -> str:
        key = _key(pattern)
        channel = self.channels.get(key)
        if channel is None:
            channel = {"address": pattern, "messages": {}}
            if _is_pattern(pattern):
                channel["description"] = _WILDCARD_NOTE
            for schema in self._schemas_for(pattern):
                name = self.message(schema)
                channel["messages"][name] = {"$ref": f"#/components/messages/{name}"}
            channel["servers"] = [{"$ref": f"#/servers/{s}"} for s in self.servers]
            self.channels[key] = channel
        for server in servers or ():
            ref = {"$ref": f"#/servers/{server}"}
            if ref not in channel["servers"]:
                channel["servers"].append(ref)
        return key

    def operation(self, action: str, cls: type[Any], patterns: list[str]) -> None:
        for pattern in patterns:
            key = self.channel(pattern)
            name = _key(f"{cls.__module__}.{cls.__qualname__}.{action}.{pattern}")
            operation: dict[str, Any] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{key}"},
                "title": f"{cls.__qualname__} {action}s {pattern}",
            }
            messages = self.channels[key]["messages"]
            if messages:
                operation["messages"] = [
                    {"$ref": f"#/channels/{key}/messages/{m}"} for m in messages
                ]
            if cls.__doc__:
                operation["description"] = cls.__doc__.strip()
            self.operations[name] = operation

    def livesocket(self, url: str) -> None:
        policy = LiveSocketPolicy.from_config(self.config)
        host = url.removeprefix("http://").removeprefix("https://").rstrip("/")
        server: dict[str, Any] = {
            "host": host,
            "protocol": "wss" if url.startswith("https://") else "ws",
            "pathname": "/livesocket/ws",
            "description": "Moksha's live socket: subscribe with "
            '{"topic": "__topic_subscribe__", "body": "<pattern>"}; each message arrives '
            'as {"topic", "body", ...}. Also SSE at /livesocket/sse and POST '
            "/livesocket/publish.",
        }
        if policy.protected:
            self.security["liveSocketToken"] = {
                "type": "httpApiKey",
                "name": "token",
                "in": "query",
                "description": "A token (HS256 JWT) granting protected topics, in the URL's "
                'token parameter or sent as {"topic": "__auth__", "body": "<token>"}.',
            }
            server["security"] = [{"$ref": "#/components/securitySchemes/liveSocketToken"}]
        self.servers["livesocket"] = server
        for pattern in policy.protected:
            key = self.channel(pattern, servers=["livesocket"])
            channel = self.channels[key]
            note = "Protected on the live socket: only clients with a token granting it receive it."
            channel["description"] = f"{channel.get('description', '')} {note}".strip()
        for pattern in policy.publish_allow:
            key = self.channel(pattern, servers=["livesocket"])
            self.operations[_key(f"browsers.send.{pattern}")] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{key}"},
                "title": f"browsers publish to {pattern} through the live socket",
            }

    def document(self) -> dict[str, Any]:
        components: dict[str, Any] = {"messages": self.messages}
        if self.security:
            components["securitySchemes"] = self.security
        return {
            "asyncapi": ASYNCAPI_VERSION,
            "info": {
                "title": str(self.config.get("moksha.dashboard.title") or "Moksha"),
                "version": __version__,
                "description": "Topics, messages and operations of this Moksha deployment "
                "(generated by Moksha).",
            },
            "defaultContentType": "application/json",
            "servers": self.servers,
            "channels": self.channels,
            "operations": self.operations,
            "components": components,
        }


def _schema_format(schema: dict[str, Any]) -> str:
    draft = str(schema.get("$schema", ""))
    for number in ("draft-04", "draft-06", "draft-07"):
        if number in draft:
            return f"application/schema+json;version={number}"
    return "application/schema+json;version=draft-07"
