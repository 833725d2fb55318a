"""A small archive the search tests know by heart, and a site serving it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from moksha.archive import ArchiveStore
from moksha.archive.rows import Categorizer
from moksha.config import load_config
from moksha.hub import CentralMokshaHub
from moksha.message import Message
from moksha.web import MokshaMiddleware, create_app

PREFIX = "org.fedoraproject.prod"


def user(*names: str) -> dict[str, str]:
    return {f"fedora_messaging_user_{name}": "true" for name in names}


def package(*names: str) -> dict[str, str]:
    return {f"fedora_messaging_rpm_{name}": "true" for name in names}


# id → message; times 1000, 2000, 3000, 4000 (seconds after the epoch).
KNOWN = {
    "m1": Message(
        f"{PREFIX}.bodhi.update.comment",
        {"comment": "looks good", "agent": "alice"},
        {**user("alice"), **package("kernel")},
        id="m1",
        timestamp=1000,
    ),
    "m2": Message(
        f"{PREFIX}.koji.build.complete",
        {"build": "bash-5"},
        {**user("bob"), **package("kernel", "bash")},
        id="m2",
        timestamp=2000,
    ),
    "m3": Message(
        f"{PREFIX}.bodhi.update.request",
        {"note": "urgent fix"},
        {**user("bob"), "moksha-agent": "bob"},
        id="m3",
        timestamp=3000,
    ),
    "m4": Message("org.example.other", headers={}, id="m4", timestamp=4000, payload="plain text"),
}


def fill(url: str) -> None:
    store = ArchiveStore(url, categorize=Categorizer(prefix=PREFIX))
    store.record(list(KNOWN.values()))
    store.close()


@contextlib.asynccontextmanager
async def archive_site(url: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """``moksha start``'s site (create_app) with the archive at ``url``, and a client of it."""
    overrides = {
        "moksha.backends": "memory",
        "moksha.archive": "true",
        "moksha.archive.url": url,
        "moksha.archive.topic_prefix": PREFIX,
        **settings,
    }
    config = load_config(overrides=overrides, environ={}, search=False)
    async with CentralMokshaHub(config, [], []) as hub:
        app: MokshaMiddleware = create_app(hub, config)
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                http.hub = hub  # type: ignore[attr-defined]
                yield http
        finally:
            await app.aclose()


def dead_letter(topic: str, error: str) -> Message:
    """A dead letter as the hub publishes it."""
    original = Message(topic, {"order": error})
    return Message(
        f"{topic}.dead",
        {"order": error},
        {
            "moksha-dead-letter": topic,
            "moksha-original-id": original.id,
            "moksha-error": f"ValueError: {error}",
            "moksha-attempts": "4",
            "moksha-consumer": "Shop",
            "shop-header": "kept",
        },
    )
