"""In Chromium: the dead-letter page of moksha start's site, requeueing one dead letter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from archive_support import dead_letter
from sqlalchemy import select

from moksha.archive import ArchiveStore
from moksha.archive.models import MESSAGES
from support import TIMEOUT
from web.test_pages_browser import MokshaSite, open_page

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture
def sqlite_archive(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'archive.sqlite'}"


@pytest.fixture
def site(sqlite_archive: str) -> Iterator[MokshaSite]:
    settings = {
        "moksha.backends": "memory",
        "moksha.archive": "true",
        "moksha.archive.url": sqlite_archive,
    }
    started = MokshaSite(settings).start()
    yield started
    started.close()


def test_requeue_one_dead_letter_from_the_page(
    browser: Browser, site: MokshaSite, sqlite_archive: str
) -> None:
    keep = dead_letter("shop.orders", "card declined")
    retry = dead_letter("shop.orders", "out of stock")
    store = ArchiveStore(sqlite_archive)
    store.record([keep, retry])

    page, errors = open_page(browser, site.url + "/")
    page.get_by_role("link", name="Dead letters").click()
    page.wait_for_url("**/archive/dead")
    rows = page.locator("table.moksha-archive-dead-list tbody tr")
    assert rows.count() == 2
    row = page.locator(f'tr[data-id="{retry.id}"]')
    assert "ValueError: out of stock" in row.inner_text()
    row.get_by_role("button", name="Requeue").click()

    page.get_by_role("status").filter(has_text="1 dead letter requeued").wait_for()
    assert page.locator("table.moksha-archive-dead-list tbody tr").count() == 1
    assert page.locator(f'tr[data-id="{keep.id}"]').count() == 1

    page.get_by_label("State").select_option("requeued")
    page.get_by_role("button", name="Filter").click()
    page.locator(f'tr[data-id="{retry.id}"]').get_by_role("link").click()
    page.get_by_text("requeued as").wait_for()
    requeued_id = page.locator(".moksha-archive-state a").inner_text()

    # The hub published it on its original topic, and the archive recorded it.
    def recorded() -> list[str]:
        with store.engine.connect() as connection:
            query = select(MESSAGES.c.topic).where(MESSAGES.c.msg_id == requeued_id)
            return list(connection.execute(query).scalars())

    for _ in range(int(TIMEOUT / 0.05)):
        if recorded():
            break
        page.wait_for_timeout(50)
    assert recorded() == ["shop.orders"]
    store.close()
    assert errors == []


def test_search_the_archive_and_open_a_message(
    browser: Browser, site: MokshaSite, sqlite_archive: str
) -> None:
    site.send("shop.orders.new", {"order": 41, "customer": "kim"})
    site.send("shop.refunds.new", {"order": 7})
    store = ArchiveStore(sqlite_archive)

    def archived() -> int:
        with store.engine.connect() as connection:
            return len(list(connection.execute(select(MESSAGES.c.msg_id)).scalars()))

    page, errors = open_page(browser, site.url + "/")
    for _ in range(int(TIMEOUT / 0.05)):  # bounded: the recorder writes within moments
        if archived() >= 2:
            break
        page.wait_for_timeout(50)
    store.close()
    page.get_by_role("link", name="Archive", exact=True).click()
    page.wait_for_url("**/archive/")
    page.get_by_role("textbox", name="Topic").fill("shop.*.new")
    page.get_by_role("textbox", name="Text").fill("kim")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/archive/?topic=*")
    results = page.locator("table.moksha-archive-results tbody tr")
    results.first.wait_for()
    assert results.count() == 1
    assert page.locator("figure.moksha-archive-volume rect").count() == 1
    results.get_by_role("link", name="shop.orders.new").click()
    page.wait_for_url("**/archive/message?id=*")
    assert '"customer": "kim"' in page.locator("pre.moksha-json").first.inner_text()
    assert errors == []
