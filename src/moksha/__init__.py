"""Moksha: real-time, message-driven web applications.

A hub routes messages between brokers (or an embedded in-memory bus), plugin
consumers and producers, and browsers.  Start with
:class:`~moksha.hub.CentralMokshaHub` and :mod:`moksha.hub.api`.
"""

from moksha.config import Config, load_config
from moksha.errors import (
    BackendError,
    BackendUnavailable,
    ConfigError,
    HubClosed,
    MessageError,
    MokshaError,
    PluginError,
)
from moksha.hub import CentralMokshaHub, MokshaHub
from moksha.hub.api import Consumer, PollingProducer, Producer
from moksha.message import Message

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "BackendUnavailable",
    "CentralMokshaHub",
    "Config",
    "ConfigError",
    "Consumer",
    "HubClosed",
    "Message",
    "MessageError",
    "MokshaError",
    "MokshaHub",
    "PluginError",
    "PollingProducer",
    "Producer",
    "__version__",
    "load_config",
]
