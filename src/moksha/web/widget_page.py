"""``/widgets/<name>``: one widget on a page of its own, its params from the query string.

The widget's name passes the authorization hook first (``widget``, name);
params a link may not give (code, foreign addresses) are refused with a page
saying so, and a missing param with the address to write instead.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from moksha.config import Config
from moksha.web.auth import Guard
from moksha.web.errors import error_page
from moksha.web.security import page_headers

__all__ = ["WidgetPages"]


class WidgetPages:
    """Serves ``/widgets/<name>`` (see the module docstring).

    Args:
        guard: asked whether the request may see the widget.
        config: given to the widget with the params of the link.
    """

    def __init__(self, guard: Guard, config: Config) -> None:
        self.guard = guard
        self.config = config

    async def page(self, request: Request) -> Response:
        """The page of the widget named in the path, or an error page saying why not."""
        name = request.path_params["name"]
        refusal = self.guard.refusal(request.scope, "widget", name)
        if refusal is not None:
            return refusal
        try:
            from moksha.widgets import (
                MissingParam,
                ParamRefused,
                WidgetError,
                find_widget,
                render_page,
            )
        except ImportError:
            return error_page(404, "No widgets", "moksha.widgets is not installed.")
        try:
            widget = find_widget(name)
        except WidgetError as exc:
            return error_page(404, "No such widget", str(exc))
        # The card's heading, when the link gives one, is the best name for the page.
        title = request.query_params.get("heading") or widget.standalone_title(name)
        try:
            # Params from a link: the widget refuses those only the site's code may give.
            bound = widget.for_request(dict(request.query_params), self.config)
            # Off the event loop: a widget may fetch something (a feed) to render.
            page = await asyncio.to_thread(render_page, bound, title=title)
        except ParamRefused as exc:
            return error_page(403, "Not allowed from a link", str(exc))
        except MissingParam as exc:
            given = f"{request.url.query}&" if request.url.query else ""  # as typed: %23 stays
            example = f"{request.url.path}?{given}{exc.param}=..."
            return error_page(
                400, "Bad widget parameters", f"{exc}. Pass it in the page's address: {example}"
            )
        except WidgetError as exc:
            return error_page(400, "Bad widget parameters", str(exc))
        return Response(page, media_type="text/html", headers=page_headers(request, self.config))
