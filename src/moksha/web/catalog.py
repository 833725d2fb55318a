"""The topic catalog and the AsyncAPI document, as pages and JSON on ``moksha start``.

=========================  =================================================
``/asyncapi.json``         the AsyncAPI 3.0 document (:mod:`moksha.schema.asyncapi`)
``/asyncapi.yaml``         the same document as YAML (written as JSON, which is
                           YAML 1.2: no YAML library needed)
``/asyncapi``              the document for people: servers, channels,
                           operations, messages with their payload schemas
``/_moksha/topics.json``   the topic catalog (:mod:`moksha.schema.catalog`)
``/_moksha/topics``        the catalog for people, refreshed while open
=========================  =================================================

The pages are rendered here, with no script from elsewhere (no CDN).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from moksha.config import Config
from moksha.schema.asyncapi import asyncapi_document
from moksha.web.security import page_headers

if TYPE_CHECKING:
    from moksha.hub import MokshaHub

__all__ = ["CATALOG_PATH", "catalog_routes", "hub_asyncapi"]

CATALOG_PATH = "/_moksha/topics"

_ENV = Environment(autoescape=True)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1b1b1b; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; }
th, td { border-bottom: 1px solid #ccc; padding: .35rem .5rem; text-align: left;
  vertical-align: top; }
code, pre { font-size: .85rem; } pre { white-space: pre-wrap; margin: 0; }
.muted { color: #555; }
"""

_CATALOG = _ENV.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<meta http-equiv="refresh" content="5">
<title>Topics · {{ title }}</title><style>{{ style }}</style></head>
<body><main>
<h1>Topics</h1>
<p class="muted">Every topic this hub published, received from a broker, or knows from a
schema or a plugin. Counts: messages published here plus deliveries from brokers to its
consumers. Refreshed every 5 s; also as <a href="topics.json">JSON</a>, and the
<a href="/asyncapi">AsyncAPI document</a>.</p>
<table>
<caption class="muted">{{ rows|length }} topic(s)</caption>
<thead><tr><th scope="col">Topic</th><th scope="col">Messages</th><th scope="col">Per second</th>
<th scope="col">Last seen (UTC)</th><th scope="col">Schema</th><th scope="col">Summary</th>
<th scope="col">Example</th><th scope="col">Declared by</th></tr></thead>
<tbody>
{% for row in rows %}<tr data-topic="{{ row.topic }}">
<td><code>{{ row.topic }}</code></td><td>{{ row.count }}</td><td>{{ row.rate }}</td>
<td>{{ row.last_seen_text }}</td>
<td>{% if row.schema %}<code>{{ row.schema }}</code>{% if row.schema_package %}
<span class="muted">({{ row.schema_package }})</span>{% endif %}{% else %}—{% endif %}</td>
<td class="summary">{{ row.summary or "—" }}</td>
<td>{% if row.example is not none %}<pre>{{ row.example_text }}</pre>{% else %}—{% endif %}</td>
<td>{% for name in row.consumers %}<div>consumer <code>{{ name }}</code></div>{% endfor %}
{% for name in row.producers %}<div>producer <code>{{ name }}</code></div>{% endfor %}</td>
</tr>{% endfor %}
</tbody></table>
</main></body></html>"""
)

_ASYNCAPI = _ENV.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>AsyncAPI · {{ doc.info.title }}</title><style>{{ style }}</style></head>
<body><main>
<h1>{{ doc.info.title }} <span class="muted">AsyncAPI {{ doc.asyncapi }}</span></h1>
<p>{{ doc.info.description }} Machine-readable: <a href="/asyncapi.json">JSON</a>,
<a href="/asyncapi.yaml">YAML</a>. Topics seen: <a href="{{ catalog }}">catalog</a>.</p>
<h2>Servers</h2>
<table><thead><tr><th scope="col">Name</th><th scope="col">Protocol</th><th scope="col">Host</th>
<th scope="col">About</th></tr></thead><tbody>
{% for name, server in doc.servers.items() %}<tr><td>{{ name }}</td><td>{{ server.protocol }}</td>
<td><code>{{ server.host }}{{ server.pathname or "" }}</code></td>
<td>{{ server.description }}{% if server.security %} Needs a token.{% endif %}</td></tr>
{% endfor %}</tbody></table>
<h2>Channels</h2>
<table><thead><tr><th scope="col">Address</th><th scope="col">Messages</th>
<th scope="col">About</th></tr></thead><tbody>
{% for key, channel in doc.channels.items() %}<tr id="channel-{{ key }}">
<td><code>{{ channel.address }}</code></td>
<td>{% for name in channel.messages %}<a href="#message-{{ name }}">{{ name }}</a> {% endfor %}</td>
<td>{{ channel.description or "" }}</td></tr>
{% endfor %}</tbody></table>
<h2>Operations</h2>
<table><thead><tr><th scope="col">Action</th><th scope="col">What</th></tr></thead><tbody>
{% for key, op in doc.operations.items() %}<tr><td>{{ op.action }}</td><td>{{ op.title }}</td></tr>
{% endfor %}</tbody></table>
<h2>Messages</h2>
{% for key, message in doc.components.messages.items() %}<section id="message-{{ key }}">
<h3>{{ message.name }} <span class="muted">{{ message.title }}</span></h3>
{% if message.description %}<p>{{ message.description }}</p>{% endif %}
<pre>{{ payloads[key] }}</pre></section>
{% endfor %}
</main></body></html>"""
)


def hub_asyncapi(hub: MokshaHub, livesocket_url: str | None = None) -> dict[str, Any]:
    """The AsyncAPI document of a running hub: its schemas, plugins and live socket.

    Args:
        hub: the hub.
        livesocket_url: where the live socket is served, when not on the hub's own port.
    """
    consumers = [type(c) for c in getattr(hub, "consumers", ())]
    producers = [type(p) for p in getattr(hub, "producers", ())]
    return asyncapi_document(
        hub.config,
        hub.schemas.registry,
        consumers,
        producers,
        livesocket_url=livesocket_url or getattr(hub, "livesocket_url", None),
    )


def catalog_routes(hub: MokshaHub, config: Config, *, serves_live: bool = False) -> list[BaseRoute]:
    """The routes of the table in the module's docstring.

    Args:
        hub: the hub described.
        config: the site's configuration.
        serves_live: this site serves the live socket on its own port (``moksha start``).
    """
    title = str(config.get("moksha.dashboard.title") or "Moksha")

    def document(request: Request) -> dict[str, Any]:
        live = str(request.base_url).rstrip("/") if serves_live else None
        return hub_asyncapi(hub, live)

    async def asyncapi_json(request: Request) -> Response:
        return JSONResponse(document(request))

    async def asyncapi_yaml(request: Request) -> Response:
        text = json.dumps(document(request), indent=2, ensure_ascii=False)
        return Response(text, media_type="application/yaml")

    async def asyncapi_page(request: Request) -> Response:
        doc = document(request)
        payloads = {
            key: json.dumps(message["payload"]["schema"], indent=2, ensure_ascii=False)
            for key, message in doc["components"]["messages"].items()
        }
        page = _ASYNCAPI.render(doc=doc, payloads=payloads, style=_STYLE, catalog=CATALOG_PATH)
        return HTMLResponse(page, headers=page_headers(request, config))

    async def topics_json(request: Request) -> Response:
        return JSONResponse(hub.catalog.entries(), headers={"Cache-Control": "no-store"})

    async def topics_page(request: Request) -> Response:
        rows = []
        for row in hub.catalog.entries():
            seen = row["last_seen"]
            example = row["example"]
            text = json.dumps(example, indent=1, ensure_ascii=False) if example is not None else ""
            rows.append(
                {
                    **row,
                    "last_seen_text": datetime.fromtimestamp(seen, UTC).strftime("%H:%M:%S")
                    if seen
                    else "—",
                    "example_text": text[:600],
                }
            )
        page = _CATALOG.render(rows=rows, title=title, style=_STYLE)
        headers = {**page_headers(request, config), "Cache-Control": "no-store"}
        return HTMLResponse(page, headers=headers)

    return [
        Route("/asyncapi.json", asyncapi_json),
        Route("/asyncapi.yaml", asyncapi_yaml),
        Route("/asyncapi", asyncapi_page),
        Route(f"{CATALOG_PATH}.json", topics_json),
        Route(CATALOG_PATH, topics_page),
    ]
