"""``/archive/`` on ``moksha start``: datagrepper's v2 API, the search page, the dead letters.

=================================  ==============================================
``GET  /archive/v2/search``        datagrepper v2 search (:mod:`moksha.archive.query`)
``GET  /archive/v2/id?id=``        one message, as datagrepper gives it
``GET  /archive/``                 the search page (topic, time, text, user, package)
``GET  /archive/message?id=``      one message in full (and its dead-letter facts)
``GET  /archive/dead``             dead letters, filtered by topic, error, time, state
``POST /archive/dead/requeue``     requeue one (``id``) or all matching (``all=1``)
``POST /archive/dead/discard``     discard one or all matching
=================================  ==============================================

Everything here is the dashboard called ``archive`` to the authorization
hook (``moksha.auth.allow.dashboard.archive = ops``); requeueing and
discarding are the dashboard ``archive.dead`` as well
(``moksha.auth.allow.dashboard.archive.dead = admins``).  Database work runs
in worker threads.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from markupsafe import Markup
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route, Router

from moksha.archive.dead import DeadFilter, count_dead, discard, list_dead, requeue
from moksha.archive.models import DEAD, DEAD_STATES
from moksha.archive.query import (
    Search,
    SearchError,
    archived_message,
    find_message,
    parse_time,
    search,
)
from moksha.archive.store import ArchiveStore
from moksha.archive.volume import volume_chart
from moksha.config import Config
from moksha.hub.republish import publish_message
from moksha.message import Message
from moksha.web.context import web_context
from moksha.web.errors import error_page, not_found
from moksha.web.resources import STATIC_PREFIX
from moksha.web.security import page_headers
from moksha.widgets.page import render_page
from moksha.widgets.templates import render_file

if TYPE_CHECKING:
    from moksha.hub.client import MokshaHub

__all__ = ["ACT_NAME", "ARCHIVE_NAME", "ARCHIVE_PREFIX", "archive_app"]

ARCHIVE_PREFIX = "/archive"
ARCHIVE_NAME = "archive"
ACT_NAME = "archive.dead"
HTML = Path(__file__).parent / "html"
PAGE_ROWS = 50


def _params(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        params.setdefault(name, []).append(value)
    return params


def _dead_filter(values: dict[str, list[str]]) -> DeadFilter:
    """The dead-letter filter of a query string or form.

    Raises:
        SearchError: a time is malformed, or the state unknown.
    """

    def one(name: str) -> str | None:
        found = [v.strip() for v in values.get(name, []) if v.strip()]
        return found[-1] if found else None

    state = one("state") or "dead"
    if state not in DEAD_STATES:
        raise SearchError(f"state={state!r}: expected one of {', '.join(DEAD_STATES)}")
    since, until = one("since"), one("until")
    return DeadFilter(
        topic=one("topic"),
        error=one("error"),
        since=parse_time(since, "since") if since else None,
        until=parse_time(until, "until") if until else None,
        state=state,
    )


class ArchiveSite:
    """The archive's routes over one store and (for requeues) one hub."""

    def __init__(self, store: ArchiveStore, hub: MokshaHub | None, config: Config) -> None:
        self.store = store
        self.hub = hub
        self.config = config
        self.base = ARCHIVE_PREFIX + "/"

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v2/search", self.api_search),
            Route("/v2/id", self.api_id),
            Route("/", self.search_page),
            Route("/message", self.message_page),
            Route("/dead", self.dead_page),
            Route("/dead/requeue", self.act, methods=["POST"]),
            Route("/dead/discard", self.act, methods=["POST"]),
        ]

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        def with_connection() -> Any:
            with self.store.engine.connect() as connection:
                return function(connection, *args)

        return await asyncio.to_thread(with_connection)

    # -- datagrepper v2 ---------------------------------------------------

    async def api_search(self, request: Request) -> Response:
        try:
            query = Search.from_params(_params(request))
            page = await self._run(search, query)
        except SearchError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(page.to_datagrepper())

    async def api_id(self, request: Request) -> Response:
        msg_id = request.query_params.get("id", "").strip()
        if not msg_id:
            return JSONResponse({"error": "give the message's id: /archive/v2/id?id=..."}, 400)
        row = await self._run(find_message, msg_id)
        if row is None:
            return JSONResponse({"error": f"no message has the id {msg_id!r}"}, 404)
        return JSONResponse(archived_message(row))

    # -- pages ------------------------------------------------------------

    def _page(self, request: Request, template: str, title: str, **context: Any) -> Response:
        context.update(base=self.base, root="/", static=STATIC_PREFIX)
        body = Markup(render_file(HTML / template, context))
        html = render_page(body, title=title, connection=False)
        return HTMLResponse(html, headers=page_headers(request, self.config))

    async def search_page(self, request: Request) -> Response:
        form = {
            name: request.query_params.get(name, "")
            for name in ("topic", "start", "end", "contains", "user", "package")
        }
        params = {name: [value] for name, value in form.items() if value.strip()}
        if cursor := request.query_params.get("cursor"):
            params["cursor"] = [cursor]
        params["rows_per_page"] = [str(PAGE_ROWS)]
        page = error = volume = None
        try:
            query = Search.from_params(params)
            page = await self._run(search, query)
            volume = await self._run(volume_chart, query)
        except SearchError as exc:
            error = str(exc)
        next_link = None
        if page is not None and page.next_cursor:
            kept = {name: value for name, value in form.items() if value}
            next_link = self.base + "?" + urlencode({**kept, "cursor": page.next_cursor})
        return self._page(
            request,
            "search.html",
            "Archive",
            form=form,
            page=page,
            error=error,
            next_link=next_link,
            volume=volume,
        )

    async def message_page(self, request: Request) -> Response:
        msg_id = request.query_params.get("id", "")

        def read(connection: Any) -> tuple[Any, Any]:
            row = find_message(connection, msg_id)
            dead = connection.execute(select(DEAD).where(DEAD.c.msg_id == msg_id))
            return row, dead.mappings().first()

        row, dead = await self._run(read)
        if row is None:
            return error_page(404, "No such message", f"The archive has no message {msg_id!r}.")
        message = archived_message(row)
        body = message["body"]
        shown = body if isinstance(body, str) else json.dumps(body, indent=2, ensure_ascii=False)
        return self._page(
            request,
            "message.html",
            "Archived message",
            message=message,
            dead=dead,
            body=shown,
            headers=json.dumps(message["headers"], indent=2, ensure_ascii=False),
        )

    async def dead_page(self, request: Request) -> Response:
        values = _params(request)
        form = {name: request.query_params.get(name, "") for name in ("topic", "error", "since")}
        form["until"] = request.query_params.get("until", "")
        form["state"] = request.query_params.get("state", "") or "dead"
        rows: list[Any] = []
        total = 0
        error = None
        try:
            selection = _dead_filter(values)
            rows = await self._run(lambda c: list_dead(c, selection, limit=PAGE_ROWS))
            total = await self._run(count_dead, selection)
        except SearchError as exc:
            error = str(exc)
        guard = web_context(request.scope).guard
        keep = [(name, value) for name, value in form.items() if value]
        return self._page(
            request,
            "dead.html",
            "Dead letters",
            form=form,
            rows=rows,
            total=total,
            error=error,
            note=request.query_params.get("note"),
            states=DEAD_STATES,
            may_act=guard.may_see(request.scope, "dashboard", ACT_NAME),
            keep=keep,
        )

    async def act(self, request: Request) -> Response:
        guard = web_context(request.scope).guard
        refusal = guard.refusal(request.scope, "dashboard", ACT_NAME)
        if refusal is not None:
            return refusal
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        try:
            selection = _dead_filter(form)
        except SearchError as exc:
            return error_page(400, "Bad filter", str(exc))
        ids = tuple(v for v in form.get("id", []) if v)
        if not ids and not form.get("all"):
            return error_page(400, "Nothing chosen", "Give a dead letter's id, or all=1.")
        if ids:
            selection = DeadFilter(ids=ids)
        who = guard.identity(request.scope).user
        if request.url.path.endswith("/requeue"):
            note = await self._requeue(selection, who)
        else:
            count = await asyncio.to_thread(discard, self.store.engine, selection, by=who)
            note = f"{count} dead letter{'' if count == 1 else 's'} discarded"
        kept = {k: v[-1] for k, v in form.items() if k in ("topic", "error", "since", "until")}
        return RedirectResponse(f"{self.base}dead?{urlencode({**kept, 'note': note})}", 303)

    async def _requeue(self, selection: DeadFilter, who: str | None) -> str:
        hub = self.hub
        if hub is None:
            return "nothing requeued: this site has no hub to publish with"

        async def publish(message: Message) -> Any:
            loop = hub.loop
            if loop is None or loop is asyncio.get_running_loop():
                return await publish_message(hub, message)
            done = asyncio.run_coroutine_threadsafe(publish_message(hub, message), loop)
            return await asyncio.wrap_future(done)

        results = await requeue(self.store.engine, selection, publish, by=who)
        published = sum(1 for result in results if result.message is not None)
        failed = [result.note for result in results if result.message is None]
        note = f"{published} dead letter{'' if published == 1 else 's'} requeued"
        return note + (f"; {len(failed)} failed: {failed[0]}" if failed else "")


def archive_app(hub: MokshaHub | None, config: Config) -> tuple[Router, ArchiveStore]:
    """The archive's ASGI app (to mount at ``/archive``) and the store it reads.

    Raises:
        ConfigError: the archive's URL cannot be used.
    """
    store = ArchiveStore.from_config(config)
    site = ArchiveSite(store, hub, config)
    return Router(routes=site.routes(), default=not_found), store
