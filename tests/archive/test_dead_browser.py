"""In Chromium: the dead-letter page of moksha start's site, requeueing one dead letter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from moksha.archive import ArchiveStore
from moksha.archive.models import MESSAGES
from support import TIMEOUT
from test_cli import dead_letter
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
