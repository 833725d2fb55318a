"""/archive/dead: list, show, requeue and discard dead letters over HTTP, under authorization."""

from __future__ import annotations

from typing import Any

from archive_support import archive_site, dead_letter

from moksha.archive import ArchiveStore
from moksha.message import Message
from support import until

ADMIN = {"X-Remote-User": "ada", "X-Remote-Groups": "admins"}
OPERATOR = {"X-Remote-User": "otto", "X-Remote-Groups": "ops"}
GUARDED = {
    "moksha.auth.header": "X-Remote-User",
    "moksha.auth.groups_header": "X-Remote-Groups",
    "moksha.auth.allow.dashboard.archive": "ops, admins",
    "moksha.auth.allow.dashboard.archive.dead": "admins",
}


def record(url: str, *messages: Any) -> None:
    store = ArchiveStore(url)
    store.record(list(messages))
    store.close()


async def test_an_authorized_user_requeues_one_then_discards_the_rest(archive_url: str) -> None:
    first = dead_letter("shop.orders", "out of stock")
    second = dead_letter("shop.orders", "card declined")
    third = dead_letter("shop.refunds", "bank down")
    record(archive_url, first, second, third)
    async with archive_site(archive_url, **GUARDED) as http:
        received: list[Message] = []
        await http.hub.asubscribe("shop.#", received.append)  # type: ignore[attr-defined]

        listing = await http.get("/archive/dead?topic=shop.orders", headers=OPERATOR)
        assert listing.status_code == 200
        assert "2 dead letters dead" in listing.text and "out of stock" in listing.text
        assert "bank down" not in listing.text
        assert "Requeue" not in listing.text  # ops may look, not act
        refused = await http.post("/archive/dead/requeue", data={"id": first.id}, headers=OPERATOR)
        assert refused.status_code == 403

        shown = await http.get(f"/archive/message?id={first.id}", headers=OPERATOR)
        assert "ValueError: out of stock" in shown.text and "shop.orders" in shown.text

        done = await http.post("/archive/dead/requeue", data={"id": first.id}, headers=ADMIN)
        assert done.status_code == 303 and "1+dead+letter+requeued" in done.headers["location"]
        again = await http.post("/archive/dead/requeue", data={"id": first.id}, headers=ADMIN)
        assert "0+dead+letters+requeued" in again.headers["location"]
        await until(lambda: len(received) == 1)
        [requeued] = received
        assert requeued.topic == "shop.orders"
        assert requeued.headers["moksha-requeued"] == first.id
        assert "moksha-error" not in requeued.headers

        shown = await http.get(f"/archive/message?id={first.id}", headers=ADMIN)
        assert "requeued as" in shown.text and requeued.id in shown.text and "by ada" in shown.text

        gone = await http.post(
            "/archive/dead/discard", data={"all": "1", "topic": "shop.#"}, headers=ADMIN
        )
        assert "2+dead+letters+discarded" in gone.headers["location"]
        empty = await http.get("/archive/dead", headers=ADMIN)
        assert "No dead letter matches." in empty.text
        discarded = await http.get("/archive/dead?state=discarded", headers=ADMIN)
        assert "card declined" in discarded.text and "bank down" in discarded.text
        assert len(received) == 1


async def test_a_cross_site_form_cannot_requeue(archive_url: str) -> None:
    letter = dead_letter("shop.orders", "out of stock")
    record(archive_url, letter)
    async with archive_site(archive_url) as http:
        forged = await http.post(
            "/archive/dead/requeue",
            data={"id": letter.id},
            headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        )
        listing = await http.get("/archive/dead")
    assert forged.status_code == 403
    assert "1 dead letter dead" in listing.text
