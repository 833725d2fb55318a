"""What attaches to a central hub and runs with it: the live socket, the cluster, the archive.

The hub core knows none of them: each attaches as any subscriber does, through
this small contract, found on the ``moksha.hub.attachment`` entry points
(Moksha's own ``livesocket``, ``cluster`` and ``archive`` are declared in its
``pyproject.toml``).  An entry
point names a factory, ``factory(config) -> Attachment | None``: None when the
configuration does not ask for it.

The hub starts the attachments that do not serve clients (the cluster: its
producers lead through it) before its consumers and producers, and those that
serve (the live socket) after them, so a hub answering on a port has started
everything; when it stops, it closes the serving ones first (they drain their
clients) and the others last.

An attachment may contribute, as attributes:

``url``
    where it serves (``http://host:port``), once started.
``coordinator``
    a :class:`Coordinator`: polling producers then run while it says this
    process leads them (one node of a cluster), not everywhere.
``consumers``
    consumer classes the hub runs after its plugins' (the archive's recorder),
    checked as classes passed in code are.  Only a non-serving attachment
    starts before the consumers, so only its ``consumers`` are run.

A venv where Moksha was not reinstalled after these entry points were added
has none of them; the hub then refuses to start when the configuration asks
for one (:func:`missing`), rather than silently running without it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from moksha.config import Config
from moksha.errors import ConfigError
from moksha.plugins import installed

if TYPE_CHECKING:
    from moksha.hub.central import CentralMokshaHub

__all__ = [
    "ATTACHMENT_GROUP",
    "Attachment",
    "AttachmentFactory",
    "Coordinator",
    "installed_factories",
    "missing",
]

ATTACHMENT_GROUP = "moksha.hub.attachment"

# The attachments Moksha ships, and when a configuration asks for each (its key and test).
_ASKED_FOR: dict[str, tuple[str, Callable[[Config], bool]]] = {
    "livesocket": ("moksha.livesocket.backend", lambda c: c.livesocket_backend is not None),
    "cluster": ("moksha.cluster.url", lambda c: bool(c.cluster_url)),
    "archive": ("moksha.archive", lambda c: c.archive),
}


class Attachment(Protocol):
    """One thing running with a hub.

    Attributes:
        name: what it provides (``livesocket``, ``cluster``): one per hub.
        serves: it serves clients on a port: started after the plugins, closed first.
    """

    name: str
    serves: bool

    async def start(self, hub: CentralMokshaHub) -> None:
        """Attach to a hub that is starting (its backends are connected)."""

    async def aclose(self) -> None:
        """Detach: a serving attachment drains its clients first."""


AttachmentFactory = Callable[[Config], "Attachment | None"]
"""What a ``moksha.hub.attachment`` entry point names: the attachment a config asks for, or None."""


class Coordinator(Protocol):
    """Says which process of several runs a piece of work (a cluster's leader election)."""

    async def lead(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` while this process holds the lock ``name``; wait for it meanwhile."""


def installed_factories() -> dict[str, AttachmentFactory]:
    """The ``moksha.hub.attachment`` entry points, by name, loaded."""
    factories: dict[str, AttachmentFactory] = {}
    for ep in installed(ATTACHMENT_GROUP):
        factories.setdefault(ep.name, ep.load())
    return factories


def missing(config: Config, provided: Iterable[str]) -> ConfigError | None:
    """The error for an attachment the config asks for and nothing provides, or None.

    Args:
        config: the hub's configuration.
        provided: the names of the attachments found.
    """
    names = set(provided)
    for name, (key, asked) in _ASKED_FOR.items():
        if asked(config) and name not in names:
            return ConfigError(
                f"{key} asks for the {name} attachment, but no installed package provides "
                f"it (entry point group {ATTACHMENT_GROUP}): Moksha's own entry points are "
                "missing, so reinstall it (in a checkout: pip install -e .)",
                key=key,
                source=config.source(key),
            )
    return None
