"""datagrepper v2 at /archive/v2: every filter and its not_ form, times, order, pages, cursor."""

from __future__ import annotations

from typing import Any

import pytest
from archive_support import KNOWN, archive_site, fill

SEARCHES = [
    ("topic=org.fedoraproject.prod.bodhi.update.comment", ["m1"]),
    ("topic=org.example.other&topic=org.fedoraproject.prod.koji.build.complete", ["m4", "m2"]),
    ("topic=org.fedoraproject.prod.bodhi.%23", ["m3", "m1"]),
    ("topic=org.fedoraproject.prod.*.build.*", ["m2"]),
    ("topic=%23.comment", ["m1"]),
    ("topic=org.*", []),
    ("not_topic=org.example.other", ["m3", "m2", "m1"]),
    ("not_topic=org.fedoraproject.%23", ["m4"]),
    ("category=bodhi", ["m3", "m1"]),
    ("category=koji&category=org", ["m4", "m2"]),
    ("not_category=bodhi", ["m4", "m2"]),
    ("user=bob", ["m3", "m2"]),
    ("user=alice&user=bob", ["m3", "m2", "m1"]),
    ("not_user=bob", ["m4", "m1"]),
    ("package=kernel", ["m2", "m1"]),
    ("not_package=kernel", ["m4", "m3"]),
    ("agent=alice", ["m1"]),
    ("not_agent=alice", ["m4", "m3", "m2"]),
    ("contains=urgent", ["m3"]),
    ("contains=bash-5&contains=plain", ["m4", "m2"]),
    ("not_contains=bash", ["m4", "m3", "m1"]),
    ("contains=100%25", []),
    ("start=2500", ["m4", "m3"]),
    ("end=2500", ["m2", "m1"]),
    ("start=1970-01-01T00:33:20Z&end=1970-01-01T00:50:00Z", ["m3", "m2"]),
    ("end=3000&delta=1500", ["m3", "m2"]),
    ("start=1000&delta=1000", ["m2", "m1"]),
    ("order=asc", ["m1", "m2", "m3", "m4"]),
    ("category=bodhi&user=bob", ["m3"]),
    ("package=kernel&not_user=alice&start=1500", ["m2"]),
]


def ids(answer: dict[str, Any]) -> list[str]:
    return [message["id"] for message in answer["raw_messages"]]


@pytest.fixture
def filled(archive_url: str) -> str:
    fill(archive_url)
    return archive_url


async def test_every_filter_and_its_not_form(filled: str) -> None:
    async with archive_site(filled) as http:
        for query, expected in SEARCHES:
            response = await http.get(f"/archive/v2/search?{query}")
            assert response.status_code == 200, (query, response.text)
            answer = response.json()
            assert ids(answer) == expected, query
            assert answer["total"] == len(expected), query


async def test_messages_come_as_datagrepper_gives_them(filled: str) -> None:
    async with archive_site(filled) as http:
        answer = (await http.get("/archive/v2/search?order=asc")).json()
        one = (await http.get("/archive/v2/id?id=m2")).json()
        plain = (await http.get("/archive/v2/id", params={"id": "m4"})).json()
        missing = await http.get("/archive/v2/id?id=nope")
    assert set(answer) >= {"raw_messages", "count", "pages", "total", "arguments"}
    assert answer["arguments"]["order"] == "asc" and answer["arguments"]["rows_per_page"] == 25
    first = answer["raw_messages"][0]
    assert set(first) == {"body", "headers", "id", "priority", "queue", "topic"}
    assert first["body"] == {"comment": "looks good", "agent": "alice"}
    assert first["headers"]["fedora_messaging_user_alice"] == "true"
    assert first["headers"]["sent-at"] == "1970-01-01T00:16:40+00:00"
    assert one["topic"] == KNOWN["m2"].topic and one["body"] == {"build": "bash-5"}
    assert plain["body"] == "plain text"
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


async def test_pages_and_the_cursor_both_ways(filled: str) -> None:
    async with archive_site(filled) as http:
        second = (await http.get("/archive/v2/search?rows_per_page=1&page=2")).json()
        assert ids(second) == ["m3"]
        assert (second["count"], second["pages"], second["total"]) == (1, 4, 4)
        last = (await http.get("/archive/v2/search?rows_per_page=3&page=2")).json()
        assert ids(last) == ["m1"] and last["pages"] == 2 and last["next_cursor"] is None
        for order, expected in (
            ("desc", ["m4", "m3", "m2", "m1"]),
            ("asc", ["m1", "m2", "m3", "m4"]),
        ):
            seen: list[str] = []
            url = f"/archive/v2/search?rows_per_page=2&order={order}"
            cursor = None
            for _ in range(5):  # bounded: two pages and an empty one at most
                answer = (await http.get(url + (f"&cursor={cursor}" if cursor else ""))).json()
                seen += ids(answer)
                cursor = answer["next_cursor"]
                if cursor is None:
                    break
            assert seen == expected
            assert answer["total"] == 4


async def test_bad_searches_are_refused_with_what_to_do(filled: str) -> None:
    async with archive_site(filled) as http:
        deep = await http.get("/archive/v2/search?rows_per_page=100&page=101")
        too_many = await http.get("/archive/v2/search?rows_per_page=101")
        bad_time = await http.get("/archive/v2/search?start=yesterday")
        unknown = await http.get("/archive/v2/search?usr=bob")
        bad_cursor = await http.get("/archive/v2/search?cursor=xyz")
        asc = (await http.get("/archive/v2/search?rows_per_page=1&order=asc")).json()
        mixed = await http.get(f"/archive/v2/search?cursor={asc['next_cursor']}&order=desc")
    assert deep.status_code == 400 and "cursor" in deep.json()["error"]
    assert too_many.status_code == 400 and "rows_per_page" in too_many.json()["error"]
    assert bad_time.status_code == 400 and "ISO 8601" in bad_time.json()["error"]
    assert unknown.status_code == 400 and "'usr'" in unknown.json()["error"]
    assert bad_cursor.status_code == 400 and "next_cursor" in bad_cursor.json()["error"]
    assert mixed.status_code == 400 and "order=asc" in mixed.json()["error"]


async def test_the_archive_is_guarded_like_the_other_pages(filled: str) -> None:
    settings = {
        "moksha.auth.header": "X-Remote-User",
        "moksha.auth.groups_header": "X-Remote-Groups",
        "moksha.auth.allow.dashboard.archive": "ops",
    }
    async with archive_site(filled, **settings) as http:
        anonymous = await http.get("/archive/v2/search")
        stranger = await http.get("/archive/v2/search", headers={"X-Remote-User": "eve"})
        operator = await http.get(
            "/archive/v2/search", headers={"X-Remote-User": "olga", "X-Remote-Groups": "ops"}
        )
        dashboard = await http.get("/", headers={"X-Remote-User": "eve"})
    assert anonymous.status_code == 401
    assert stranger.status_code == 403
    assert operator.status_code == 200 and operator.json()["total"] == 4
    assert dashboard.status_code == 200


async def test_the_search_page_finds_and_shows_messages(filled: str) -> None:
    async with archive_site(filled) as http:
        page = await http.get("/archive/?user=bob&start=1970-01-01T00:00:00Z")
        detail = await http.get("/archive/message?id=m3")
        dashboard = await http.get("/")
        bare = await http.get("/archive")
        everything = await http.get("/archive/?start=0&end=40000000")
    assert page.status_code == 200
    assert "2 messages" in page.text
    assert "org.fedoraproject.prod.bodhi.update.request" in page.text
    assert "org.fedoraproject.prod.bodhi.update.comment" not in page.text
    # The volume chart: bob's two messages are 1,000 s apart: per hour, a bar per topic.
    assert "Messages per hour, by topic" in page.text
    assert page.text.count("<rect") == 2
    assert "org.fedoraproject.prod.koji.build.complete 1970-01-01 00:00: 1" in page.text
    assert "Messages per hour" in everything.text and everything.text.count("<rect") == 4
    assert "urgent fix" in detail.text
    assert 'href="/archive/"' in dashboard.text
    assert bare.status_code == 308 and bare.headers["location"] == "/archive/"
