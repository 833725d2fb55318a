"""Finding plugins on entry points.

Moksha reads these entry-point groups (as the original did):

=========================  ==========================================
``moksha.consumer``        :class:`~moksha.hub.api.Consumer` classes
``moksha.producer``        :class:`~moksha.hub.api.Producer` classes
``moksha.stream``          producers too (the original's older name)
``moksha.widget``          widgets
``moksha.application``     ASGI applications
``moksha.wsgiapp``         WSGI applications
``moksha.backend``         message transports
``moksha.global``          resources every HTML page gets
``moksha.authorizer``      who may see an app, a widget, a dashboard
``moksha.feeds.post_processor``  functions changing feed entries before publishing
``moksha.hub.attachment``  what starts with a hub when its config asks (live socket, cluster,
                           archive)
=========================  ==========================================

An entry may name a single class or a list/tuple of classes.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, EntryPoints, entry_points
from typing import Any

__all__ = [
    "CONSUMER_GROUPS",
    "LISTED_GROUPS",
    "PRODUCER_GROUPS",
    "Plugin",
    "installed",
    "iter_plugins",
]


CONSUMER_GROUPS = ("moksha.consumer",)
PRODUCER_GROUPS = ("moksha.producer", "moksha.stream")
LISTED_GROUPS = (
    *CONSUMER_GROUPS,
    *PRODUCER_GROUPS,
    "moksha.widget",
    "moksha.application",
    "moksha.wsgiapp",
    "moksha.root",
    "moksha.backend",
    "moksha.global",
    "moksha.authorizer",
    "moksha.feeds.post_processor",
    "moksha.hub.attachment",
)


@dataclass(frozen=True, slots=True)
class Plugin:
    """One object found on an entry point.

    Attributes:
        group: the entry-point group (``moksha.consumer``, ...).
        name: the entry point's name.
        value: what the entry point references (``pkg.module:Class``).
        distribution: the installed distribution that declares it, if known.
        obj: the loaded object (a class), or None when loading failed.
        error: why loading failed, else None.
    """

    group: str
    name: str
    value: str
    distribution: str | None
    obj: Any = None
    error: str | None = None


def installed(group: str) -> EntryPoints:
    """The entry points of ``group``, read once for each ``sys.path``.

    Reading entry points opens every installed distribution's metadata (~5 ms
    with a hundred and fifty of them, per call): a hub starting reads several
    groups, so they are read once.  A distribution installed while the process
    runs is seen only on a new ``sys.path`` (as with any imported code).
    """
    return _all_entry_points(tuple(sys.path)).select(group=group)


@functools.lru_cache(maxsize=8)
def _all_entry_points(path: tuple[str, ...]) -> EntryPoints:
    found = entry_points()  # Python 3.11: SelectableGroups; from 3.12: EntryPoints
    return EntryPoints(ep for group in found.groups for ep in found.select(group=group))


def _distribution(ep: EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None
    return f"{dist.metadata['Name']} {dist.version}"


def iter_plugins(groups: Iterable[str]) -> Iterator[Plugin]:
    """Load every entry point of ``groups``; an entry holding a list yields each item.

    Entry points that fail to import are yielded with ``error`` set, not raised.
    """
    for group in groups:
        for ep in installed(group):
            dist = _distribution(ep)
            try:
                loaded = ep.load()
            except Exception as exc:
                yield Plugin(group, ep.name, ep.value, dist, error=f"{type(exc).__name__}: {exc}")
                continue
            items = loaded if isinstance(loaded, list | tuple) else [loaded]
            for item in items:
                yield Plugin(group, ep.name, ep.value, dist, obj=item)
