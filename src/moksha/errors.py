"""Every error Moksha raises on purpose, in one tree.

::

    MokshaError                  anything Moksha raises on purpose
    ├── ConfigError              a bad or missing configuration value (names key and source)
    ├── PluginError              a consumer/producer/backend plugin that cannot load or start
    ├── MessageError             a body that cannot be encoded, a frame that cannot be decoded
    │   ├── StompProtocolError   (moksha.hub.backends.stomp_frames) a malformed STOMP frame
    │   ├── StompServerError     (moksha.hub.backends.stomp_frames) the broker sent ERROR
    │   └── ValidationError      a body that does not match its topic's schema (moksha.schema)
    ├── BackendError             a transport failed
    │   └── BackendUnavailable   the broker cannot be reached (yet)
    ├── HubClosed                the hub is not running (closed, or not started)
    ├── CacheError               (moksha.web.cache) the cache store failed
    ├── ClusterError             (moksha.cluster) the cluster's shared store failed
    ├── QuickstartError          (moksha.quickstart) a project that cannot be generated
    ├── FeedError                (moksha.feeds.errors) a feed that cannot be had
    │   ├── FetchError           the server failed, timed out, or sent too much
    │   └── NotAFeed             the document is not RSS or Atom
    └── TokenError               (moksha.livesocket.tokens) a live-socket token that is invalid

Errors a user can cause read as sentences that say how to fix them; the CLI
prints them without a traceback.  Library code translates third-party errors at
the boundary (``raise BackendError(...) from exc``) so callers only ever need to
catch :class:`MokshaError`.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendUnavailable",
    "ConfigError",
    "HubClosed",
    "MessageError",
    "MokshaError",
    "PluginError",
    "ValidationError",
]


class MokshaError(Exception):
    """Base class of every error Moksha raises on purpose."""


class ConfigError(MokshaError, ValueError):
    """A configuration value is wrong or missing.

    Args:
        message: what is wrong and how to fix it.
        key: the configuration key at fault, when there is one.
        source: where the value came from (a file path, ``environment MOKSHA_X``,
            ``code`` or ``default``).
    """

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None):
        self.key = key
        self.source = source
        where = ""
        if key and source:
            where = f"{key} (from {source}): "
        elif key:
            where = f"{key}: "
        super().__init__(where + message)


class PluginError(MokshaError):
    """A plugin (consumer, producer, backend) could not be loaded or started."""


class MessageError(MokshaError, ValueError):
    """A message body cannot be encoded, or a frame cannot be decoded."""


class ValidationError(MessageError):
    """A message body does not match the schema of its topic.

    Args:
        message: the sentence (names the topic, the schema and the failing path).
        topic: the message's topic.
        schema: the schema's name (its entry point's name).
        path: where in the body it fails, e.g. ``body.user.name`` (``body`` for the whole).
        reason: what is wrong there.
    """

    def __init__(self, message: str, *, topic: str, schema: str, path: str, reason: str):
        super().__init__(message)
        self.topic = topic
        self.schema = schema
        self.path = path
        self.reason = reason


class BackendError(MokshaError):
    """A message transport failed."""


class BackendUnavailable(BackendError, ConnectionError):
    """The broker behind a backend cannot be reached."""


class HubClosed(MokshaError, RuntimeError):
    """The hub is not running: it was closed, or never started."""
