"""The topic catalog and the AsyncAPI page of ``moksha start``, in Chromium and over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from schemas_support import BuildDone, asyncapi_problems, build_body
from site_support import PAGE_TIMEOUT_MS, Site

from moksha.hub.api import Consumer

if TYPE_CHECKING:
    from playwright.sync_api import Browser

TOPIC = "test.schema.build.done"


class BuildWatcher(Consumer):
    """Watches builds (declares the messages it expects)."""

    topic = "test.schema.build.*"
    messages = [BuildDone]

    def consume(self, message: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with Site({"moksha.backends": "memory"}, [BuildWatcher]) as started:
        yield started


def test_the_catalog_page_shows_a_topic_with_its_schema_and_summary(
    site: Site, browser: Browser
) -> None:
    site.send(TOPIC, build_body())
    site.send(TOPIC, build_body(version="2.0.2"))
    context = browser.new_context()
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(f"{site.url}/_moksha/topics")
    row = page.locator(f'tr[data-topic="{TOPIC}"]')
    row.wait_for()
    text = row.inner_text()
    assert "schemas_support.BuildDone" in text  # its schema
    assert "ralph built moksha 2.0.1" in row.locator(".summary").inner_text()  # from the schema
    assert "\t2\t" in text  # two messages
    assert "BuildWatcher" in text  # the consumer that declares it
    assert errors == []
    context.close()


def test_the_asyncapi_document_and_page_are_served(
    site: Site, browser: Browser, asyncapi_schema: dict[str, Any]
) -> None:
    doc = httpx.get(f"{site.url}/asyncapi.json", timeout=5).json()
    assert asyncapi_problems(doc, asyncapi_schema) == []
    yaml = httpx.get(f"{site.url}/asyncapi.yaml", timeout=5)
    assert yaml.headers["content-type"].startswith("application/yaml")
    addresses = [channel["address"] for channel in doc["channels"].values()]
    assert "test.schema.build.*" in addresses
    assert "livesocket" in doc["servers"]
    context = browser.new_context()
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{site.url}/asyncapi")
    assert page.get_by_role("heading", name="Channels").is_visible()
    assert page.locator("code", has_text="test.schema.build.*").first.is_visible()
    assert page.locator('section[id="message-schemas_support.BuildDone"]').count() == 1
    context.close()


def test_moksha_topics_prints_a_running_sites_catalog(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    from moksha.cli import main

    site.send(TOPIC, build_body())
    assert main(["topics", "--hub", site.url, "--json"]) == 0
    rows = {row["topic"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows[TOPIC]["schema"] == "schemas_support.BuildDone"
    assert rows[TOPIC]["consumers"] == [f"{BuildWatcher.__module__}.BuildWatcher"]
    assert main(["topics", "--hub", site.url]) == 0
    assert TOPIC in capsys.readouterr().out


def test_the_feed_and_the_inspector_show_the_schemas_summary(site: Site, browser: Browser) -> None:
    context = browser.new_context()
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(f"{site.url}/")
    # The dashboard's feed ("#") and inspector subscribe once the page's script ran.
    site.wait_until(lambda: site.live is not None and site.live.stats()["subscriptions"] >= 1)
    site.send(TOPIC, build_body(version="9.9"))
    feed = page.locator(".moksha-feed-entry .moksha-summary", has_text="ralph built moksha 9.9")
    inspector = page.locator(".moksha-inspector-entry .moksha-summary", has_text="moksha 9.9")
    feed.first.wait_for()
    inspector.first.wait_for()
    assert errors == []
    context.close()
