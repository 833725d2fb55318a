"""Post-processors: plugins that change feed entries before the feed stream publishes them.

A post-processor takes the message body of one new entry (an
:class:`~moksha.feeds.parse.Entry` dict: ``title``, ``link``, ``published``,
``summary``, ``id``, ``feed``, ``feed_title``) and returns the body to
publish: the same dict changed, a new dict, or None to publish nothing::

    # myapp/feeds.py
    def tag_security(entry):
        if "CVE-" in entry["title"]:
            entry["tags"] = ["security"]
        return entry

    async def translate(entry):          # async def for one that waits on I/O
        entry["title"] = await my_translator(entry["title"])
        return entry

and is declared on the ``moksha.feeds.post_processor`` entry point::

    [project.entry-points."moksha.feeds.post_processor"]
    tag_security = "myapp.feeds:tag_security"

An entry may name a function, a class (instantiated once, without
arguments, and called per entry) or a list of them.  They run in the order
of their entry-point names, each on what the one before returned.  A plain
function runs on the hub's event loop, so it must be quick; one that does
I/O should be ``async def``.

When a post-processor raises, the entry is neither published nor
remembered: the error is logged with the feed's URL, and the entry is tried
again at the next poll.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from moksha.plugins import iter_plugins

__all__ = ["POST_PROCESSOR_GROUP", "PostProcessor", "apply_post_processors", "load_post_processors"]

log = logging.getLogger("moksha.feeds")

POST_PROCESSOR_GROUP = "moksha.feeds.post_processor"
"""The entry-point group post-processors are declared on."""

Body = dict[str, Any]
PostProcessor = Callable[[Body], Body | Awaitable[Body | None] | None]
"""A function (or callable object) from an entry's body to the body to publish, or None."""


def load_post_processors() -> list[PostProcessor]:
    """The post-processors installed on ``moksha.feeds.post_processor``, by entry-point name.

    Entries that cannot be loaded, instantiated or called are logged and left out.
    """
    found: list[PostProcessor] = []
    plugins = sorted(iter_plugins([POST_PROCESSOR_GROUP]), key=lambda plugin: plugin.name)
    for plugin in plugins:
        where = f"feed post-processor {plugin.name!r} ({plugin.value})"
        if plugin.error:
            log.error("cannot load %s: %s", where, plugin.error)
            continue
        obj = plugin.obj
        if isinstance(obj, type):
            try:
                obj = obj()
            except Exception:
                log.exception("cannot instantiate %s", where)
                continue
        if not callable(obj):
            log.error("%s is not callable: it is left out", where)
            continue
        found.append(obj)
        log.info("%s loaded", where)
    return found


async def apply_post_processors(processors: Sequence[PostProcessor], body: Body) -> Body | None:
    """Run ``body`` through ``processors`` in order.

    Args:
        processors: the post-processors.
        body: the entry's message body (each processor may change it).

    Returns:
        The body to publish, or None when a processor dropped the entry.

    Raises:
        Exception: whatever a processor raised.
        TypeError: a processor returned something other than a dict or None.
    """
    for processor in processors:
        result = processor(body)
        if inspect.isawaitable(result):
            result = await result
        if result is None:
            return None
        if not isinstance(result, dict):
            name = getattr(processor, "__qualname__", type(processor).__qualname__)
            raise TypeError(f"feed post-processor {name} returned {result!r}, not a dict or None")
        body = result
    return body
