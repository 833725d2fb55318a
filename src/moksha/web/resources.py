"""Resources a page needs: JavaScript and CSS links, rendered once each per page.

Widgets declare the resources they need; the middleware injects global ones
(the ``moksha.global`` entry point) into every HTML page.  Rendering a list
keeps the first occurrence of each resource, so a page with ten widgets that
all need the live-socket client links it once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

__all__ = ["STATIC_PREFIX", "CSSLink", "JSLink", "Resource", "render_resources"]

STATIC_PREFIX = "/_moksha/static"
"""Where Moksha serves the files of the ``moksha/static`` package folder."""


@dataclass(frozen=True, slots=True)
class JSLink:
    """A ``<script src>``; ``module=True`` for an ES module."""

    src: str
    module: bool = False

    def html(self) -> str:
        kind = ' type="module"' if self.module else ""
        return f'<script{kind} src="{escape(self.src)}"></script>'


@dataclass(frozen=True, slots=True)
class CSSLink:
    """A stylesheet ``<link>``."""

    href: str

    def html(self) -> str:
        return f'<link rel="stylesheet" href="{escape(self.href)}">'


Resource = JSLink | CSSLink


def render_resources(resources: Iterable[Resource]) -> str:
    """The HTML of ``resources``, each once, in first-seen order, stylesheets first."""
    unique = list(dict.fromkeys(resources))
    ordered = [r for r in unique if isinstance(r, CSSLink)] + [
        r for r in unique if isinstance(r, JSLink)
    ]
    return "\n".join(resource.html() for resource in ordered)
