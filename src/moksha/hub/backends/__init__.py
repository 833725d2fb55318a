"""Message transports, found by name in a registry that entry points extend.

Built in: ``memory`` (the embedded default).  A package adds a backend by
declaring it on the ``moksha.backend`` entry-point group::

    [project.entry-points."moksha.backend"]
    mybroker = "mypkg.backend:MyBrokerBackend"

Which backends a hub uses: the names in ``moksha.backends`` when set; else
every registered backend whose :meth:`Backend.configured` says the config asks
for it (``amqp_broker`` set, ``zmq_enabled = true``, ...); else ``memory``.
"""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint
from typing import TYPE_CHECKING

from moksha.errors import ConfigError, PluginError
from moksha.hub.backends.base import (
    Backend,
    Capabilities,
    DurableQueue,
    Handler,
    Subscription,
    deliver,
)
from moksha.hub.backends.memory import MemoryBackend
from moksha.plugins import installed

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = [
    "Backend",
    "Capabilities",
    "DurableQueue",
    "Handler",
    "MemoryBackend",
    "Subscription",
    "available_backends",
    "backend_class",
    "deliver",
    "select_backends",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "moksha.backend"

# Available even when Moksha runs from a source tree without installed metadata.
_BUILT_IN: dict[str, str] = {"memory": "moksha.hub.backends.memory:MemoryBackend"}


def _registered() -> dict[str, EntryPoint]:
    """The ``moksha.backend`` entry points by name (one scan: each costs ~5 ms)."""
    return {ep.name: ep for ep in installed(ENTRY_POINT_GROUP)}


def available_backends() -> dict[str, str]:
    """Registered backend names mapped to their ``module:Class`` references."""
    return {**_BUILT_IN, **{name: ep.value for name, ep in _registered().items()}}


def backend_class(name: str) -> type[Backend]:
    """Load the backend registered under ``name``.

    Raises:
        ConfigError: no backend has that name.
        PluginError: the backend's module failed to import.
    """
    if name == MemoryBackend.name:
        return MemoryBackend
    registered = _registered()
    if name not in registered:
        known = ", ".join(sorted({*_BUILT_IN, *registered}))
        raise ConfigError(
            f"there is no backend named {name!r}; installed backends: {known}",
            key="moksha.backends",
        )
    return _load(registered[name])


def _load(ep: EntryPoint) -> type[Backend]:
    try:
        cls = ep.load()
    except Exception as exc:
        raise PluginError(
            f"backend {ep.name!r} ({ep.value}) failed to load: {exc}. "
            "Is the extra it needs installed?"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise PluginError(f"backend {ep.name!r} ({ep.value}) is not a moksha Backend subclass")
    return cls


def select_backends(config: Config) -> list[type[Backend]]:
    """The backend classes a hub with ``config`` uses (see the module docstring)."""
    if config.backends:
        return [backend_class(name) for name in config.backends]
    chosen: list[type[Backend]] = []
    registered = _registered()
    for name in sorted(registered):  # a stable order: the first one receives
        if name == MemoryBackend.name:
            continue
        try:
            cls = _load(registered[name])
        except PluginError as exc:
            log.debug("skipping backend %s: %s", name, exc)
            continue
        if cls.configured(config):
            chosen.append(cls)
    return chosen or [MemoryBackend]
