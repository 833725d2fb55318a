"""A whole HTML page around widgets, with their resources in its ``<head>``.

For pages no Moksha middleware serves (the middleware would inject the
resources itself): the dashboard, a widget shown on its own, a test page::

    from moksha.widgets import FeedWidget, render_page

    html = render_page(FeedWidget(topic="org.example.#"), title="Example")
"""

from __future__ import annotations

from pathlib import Path

from markupsafe import Markup

from moksha.widgets.live import MOKSHA_JS, WIDGETS_CSS, WIDGETS_JS
from moksha.widgets.templates import render_file
from moksha.widgets.widget import ResourceCollector, Widget

__all__ = ["render_page"]

PAGE_TEMPLATE = Path(__file__).parent / "html" / "page.html"


def render_page(
    *parts: Widget | Markup | str, title: str = "Moksha", connection: bool | None = None
) -> str:
    """A complete HTML document showing ``parts`` in order.

    The widgets render in a collector of their own, so the page links each
    resource once, in its ``<head>``; ids count from 1 on every page.

    Args:
        parts: widgets (rendered with their defaults) or HTML (``Markup``; a
            plain ``str`` is escaped as text).
        title: the page's title and heading.
        connection: show the live-socket connection state in the header; None:
            when some widget of the page needs the live socket (a page that
            does not need it never says "offline").

    Returns:
        The page's HTML.

    Raises:
        WidgetError: a widget cannot render.
    """
    with ResourceCollector.collecting() as collector:
        body = Markup("\n").join(
            part.render() if isinstance(part, Widget) else part for part in parts
        )
        if connection is None:
            connection = MOKSHA_JS in collector.resources()
        collector.add(WIDGETS_CSS)
        if connection:
            collector.add(MOKSHA_JS)
            collector.add(WIDGETS_JS)  # defines <moksha-connection>
        context = {
            "title": title,
            "body": body,
            "resources": collector.html(),
            "connection": connection,
        }
        return str(render_file(PAGE_TEMPLATE, context))
