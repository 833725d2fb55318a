"""The JavaScript client and the original embed, end to end in a real browser (Chromium).

Pages load ``moksha.js`` from the hub and are driven with ``page.evaluate``;
what they receive is recorded in ``window.seen`` and their events in
``window.states`` / ``errors`` / ``recoveries``.  Waits are bounded
(``PAGE_TIMEOUT_MS``), never sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from moksha.hub import CentralMokshaHub
from support import Inbox

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from conftest import Site, StartHub

RECORD = """() => {
    window.seen = []; window.states = []; window.errors = []; window.recoveries = [];
    moksha.on("state", (s) => states.push(s));
    moksha.on("error", (e) => errors.push(e));
    moksha.on("recovered", (r) => recoveries.push(r));
}"""
# In a block: Playwright would call the function an evaluated expression returns, and
# moksha.subscribe returns the function that unsubscribes.
SUBSCRIBE = "(p) => { moksha.subscribe(p, (m) => seen.push(m)); }"


def live_status(hub: CentralMokshaHub) -> dict[str, Any]:
    """The hub's ``/livesocket/status`` JSON, as a monitoring tool reads it."""
    assert hub.livesocket_url is not None
    response = httpx.get(hub.livesocket_url + "/livesocket/status", timeout=5)
    response.raise_for_status()
    status: dict[str, Any] = response.json()
    return status


def wait_for_status(
    hub: CentralMokshaHub, check: Callable[[dict[str, Any]], bool], timeout: float = 5.0
) -> dict[str, Any]:
    """Poll the status endpoint until ``check`` accepts it (bounded), and return it."""
    stopped = threading.Event()  # never set: its wait() is the pause between polls
    polls = int(timeout / 0.02)
    for _ in range(polls):
        status = live_status(hub)
        if check(status):
            return status
        stopped.wait(0.02)
    raise AssertionError(f"the live socket's status never matched within {timeout}s: {status}")


def open_client(page: Page, hub: CentralMokshaHub) -> str:
    """Load the client in a page of the hub's own origin; return the hub's base URL."""
    base = hub.livesocket_url
    assert base is not None
    page.goto(base + "/livesocket/status")
    page.add_script_tag(url=base + "/livesocket/moksha.js")
    page.evaluate(RECORD)
    return base


def subscribe(page: Page, hub: CentralMokshaHub, *patterns: str, total: int = 0) -> None:
    """Subscribe the page's ``seen`` to each pattern; return once the hub routes them.

    ``total``: the subscriptions the hub then has in all (by default, these patterns).
    """
    for pattern in patterns:
        page.evaluate(SUBSCRIBE, pattern)
    wait_for_status(hub, lambda s: s["subscriptions"] == (total or len(patterns)))


def wait_seen(page: Page, count: int) -> list[dict[str, Any]]:
    page.wait_for_function("(n) => seen.length >= n", arg=count)
    seen: list[dict[str, Any]] = page.evaluate("seen")
    return seen


def test_a_message_from_the_hub_reaches_the_callback(start_hub: StartHub, page: Page) -> None:
    hub = start_hub()
    open_client(page, hub)
    subscribe(page, hub, "demo.news")
    hub.send_message("demo.news", {"headline": "Moksha lives"})
    [message] = wait_seen(page, 1)
    assert message["topic"] == "demo.news"
    assert message["body"] == {"headline": "Moksha lives"}
    assert message["id"].rpartition("-")[2].isdigit()
    assert page.evaluate("moksha.state") == "open"
    assert page.evaluate("states") == ["connecting", "open"]


def test_wildcards_and_two_subscriptions_share_one_websocket(
    start_hub: StartHub, page: Page
) -> None:
    hub = start_hub()
    open_client(page, hub)
    # Two patterns, one callback each: the topics both match come once to each callback.
    page.evaluate(
        """() => {
            window.temps = [];
            moksha.subscribe("sensors.*.temp", (m) => temps.push(m.topic));
        }"""
    )
    page.evaluate(SUBSCRIBE, "sensors.#")
    wait_for_status(hub, lambda s: s["subscriptions"] == 2)
    assert live_status(hub)["clients"] == 1
    for topic in (
        "sensors.hall.humidity",
        "sensors.kitchen.temp",
        "sensors.temp",
        "sensors.hall.temp",
    ):
        hub.send_message(topic, 1)
    seen = wait_seen(page, 4)
    page.wait_for_function("temps.length >= 2")
    assert [m["topic"] for m in seen] == [
        "sensors.hall.humidity",
        "sensors.kitchen.temp",
        "sensors.temp",
        "sensors.hall.temp",
    ]
    assert page.evaluate("temps") == ["sensors.kitchen.temp", "sensors.hall.temp"]
    assert live_status(hub)["clients"] == 1


def test_unsubscribe_stops_delivery(start_hub: StartHub, page: Page) -> None:
    hub = start_hub()
    open_client(page, hub)
    page.evaluate(
        """() => {
            window.first = (m) => seen.push(["first", m.body]);
            window.second = (m) => seen.push(["second", m.body]);
            moksha.subscribe("chat.lobby", first);
            moksha.subscribe("chat.lobby", second);
        }"""
    )
    page.evaluate(SUBSCRIBE, "chat.end")
    wait_for_status(hub, lambda s: s["subscriptions"] == 2)
    page.evaluate("moksha.unsubscribe('chat.lobby', first)")  # one callback: still subscribed
    hub.send_message("chat.lobby", 1)
    assert wait_seen(page, 1) == [["second", 1]]

    page.evaluate("moksha.unsubscribe('chat.lobby')")
    wait_for_status(hub, lambda s: s["subscriptions"] == 1)
    hub.send_message("chat.lobby", 2)
    hub.send_message("chat.end", 3)  # delivered after 2 would have been: proves 2 never came
    seen = wait_seen(page, 2)
    assert seen[1]["topic"] == "chat.end"
    assert len(seen) == 2


def test_publishing_from_the_browser_is_refused_by_default(start_hub: StartHub, page: Page) -> None:
    hub = start_hub()
    open_client(page, hub)
    page.evaluate("moksha.send_message('chat.room', {text: 'hi'})")
    page.wait_for_function("errors.length >= 1")
    [error] = page.evaluate("errors")
    assert "publish_allow" in error["error"]


def test_publishing_from_the_browser_when_allowed(start_hub: StartHub, page: Page) -> None:
    hub = start_hub({"moksha.livesocket.publish_allow": "chat.#"})
    inbox = Inbox()
    hub.subscribe("chat.room", lambda message: inbox(message.body))
    open_client(page, hub)
    page.evaluate("moksha.send_message('chat.room', {text: 'hi'})")  # queued, sent on open
    assert inbox.wait(1) == [{"text": "hi"}]
    assert page.evaluate("errors") == []


@pytest.mark.parametrize(
    ("missed", "history_size", "recovered"),
    [(3, 100, True), (5, 2, False)],
    ids=["gap-within-history", "gap-larger-than-history"],
)
def test_recovery_after_the_hub_restarts(
    start_hub: StartHub,
    page: Page,
    tmp_path: Path,
    missed: int,
    history_size: int,
    recovered: bool,
) -> None:
    config = {
        "moksha.livesocket.history.url": f"sqlite:///{tmp_path / 'h.sqlite'}",
        "moksha.livesocket.history.size": history_size,
    }
    hub = start_hub(config)
    open_client(page, hub)
    # Overlapping patterns: each is replayed on its own, and each callback must get a message once.
    page.evaluate(
        "() => { window.local = []; moksha.subscribe('news.local', (m) => local.push(m.body)); }"
    )
    subscribe(page, hub, "news.#", total=2)
    hub.send_message("news.local", 0)
    page.wait_for_function("seen.length === 1 && local.length === 1")

    # The network goes while the hub restarts: nothing published meanwhile can arrive live.
    page.context.set_offline(True)
    port = int(hub.livesocket_url.rpartition(":")[2])  # type: ignore[union-attr]
    hub.close()
    page.wait_for_function("moksha.state !== 'open'")
    hub = start_hub({**config, "moksha.livesocket.websocket.port": port})
    for n in range(1, missed + 1):
        hub.send_message("news.local", n)
    page.context.set_offline(False)  # the client reconnects at once and resubscribes

    page.wait_for_function("recoveries.length >= 2")
    assert page.evaluate("recoveries") == [
        {"pattern": "news.local", "recovered": recovered},
        {"pattern": "news.#", "recovered": recovered},
    ]
    hub.send_message("news.local", "live")
    page.wait_for_function("[seen.at(-1).body, local.at(-1)].every((b) => b === 'live')")
    everything = [m["body"] for m in page.evaluate("seen")]
    assert page.evaluate("local") == everything
    if recovered:
        assert everything == [0, 1, 2, 3, "live"]
    else:  # what the history still had, if anything: the newest, in order, once
        assert everything[0] == 0 and everything[-1] == "live"
        replayed = everything[1:-1]
        assert replayed == list(range(missed - len(replayed) + 1, missed + 1))
    ids = [int(m["id"].rpartition("-")[2]) for m in page.evaluate("seen")]
    assert ids == sorted(set(ids))  # one sequence across the restart, as the SQL store keeps it
    assert page.evaluate("moksha.transport") == "websocket"


def test_a_page_that_saw_nothing_yet_recovers_what_was_published_while_it_was_away(
    start_hub: StartHub, page: Page, tmp_path: Path
) -> None:
    # Its subscription began with the hub's position: the page resumes from there.
    config = {"moksha.livesocket.history.url": f"sqlite:///{tmp_path / 'h.sqlite'}"}
    hub = start_hub(config)
    hub.send_message("news.local", "before the page")
    open_client(page, hub)
    subscribe(page, hub, "news.#")

    page.context.set_offline(True)
    port = int(hub.livesocket_url.rpartition(":")[2])  # type: ignore[union-attr]
    hub.close()
    page.wait_for_function("moksha.state !== 'open'")
    hub = start_hub({**config, "moksha.livesocket.websocket.port": port})
    for n in (1, 2, 3):
        hub.send_message("news.local", n)
    page.context.set_offline(False)

    page.wait_for_function("recoveries.length >= 1")
    assert page.evaluate("recoveries") == [{"pattern": "news.#", "recovered": True}]
    hub.send_message("news.local", "live")
    assert [m["body"] for m in wait_seen(page, 4)] == [1, 2, 3, "live"]


def test_the_original_embed_from_another_origin(
    start_hub: StartHub, page: Page, other_origin: Site
) -> None:
    hub = start_hub({"moksha.livesocket.allowed_origins": other_origin.url})
    base = hub.livesocket_url
    url = other_origin.page(
        "embed.html",
        f"""<!doctype html>
        <script>
          window.got = []; window.text = [];
          function show(json) {{ got.push(json); }}
          function showText(raw) {{ text.push(raw); }}
        </script>
        <script src="{base}/livesocket?topic=widgets.clock&callback=show"></script>
        <script src="{base}/livesocket?topic=widgets.clock&callback=showText&json=false"></script>
        """,
    )
    page.goto(url)
    wait_for_status(hub, lambda s: s["subscriptions"] == 1 and s["clients"] == 1)
    hub.send_message("widgets.clock", {"time": "12:00"})
    hub.send_message("widgets.other", {"time": "never"})
    hub.send_message("widgets.clock", {"time": "12:01"})
    page.wait_for_function("got.length >= 2 && text.length >= 2")
    assert page.evaluate("got") == [{"time": "12:00"}, {"time": "12:01"}]
    assert page.evaluate("text") == ['{"time":"12:00"}', '{"time":"12:01"}']


def test_a_page_from_an_origin_not_allowed_gets_no_connection(
    start_hub: StartHub, page: Page, other_origin: Site
) -> None:
    hub = start_hub({"moksha.livesocket.allowed_origins": "https://app.example.com"})
    base = hub.livesocket_url
    page.goto(
        other_origin.page("page.html", f'<script src="{base}/livesocket/moksha.js"></script>')
    )
    page.evaluate(RECORD)
    refused = page.evaluate(
        """(url) => new Promise((resolve) => {
            const ws = new WebSocket(url);
            ws.onopen = () => resolve("opened");
            ws.onclose = (event) => resolve("closed " + event.code);
        })""",
        base.replace("http", "ws") + "/livesocket/ws",  # type: ignore[union-attr]
    )
    assert refused == "closed 1006"  # refused during the handshake: it never opened
    page.evaluate(SUBSCRIBE, "widgets.clock")
    page.wait_for_function("states.filter((s) => s === 'closed').length >= 2")
    assert "open" not in page.evaluate("states")
    assert live_status(hub)["websocket"] == 0


def test_the_es_module_from_another_origin(
    start_hub: StartHub, page: Page, other_origin: Site
) -> None:
    hub = start_hub({"moksha.livesocket.allowed_origins": other_origin.url})
    base = hub.livesocket_url
    url = other_origin.page(
        "module.html",
        f"""<!doctype html>
        <script type="module">
          import moksha from "{base}/livesocket/moksha.mjs";
          window.seen = [];
          moksha.subscribe("widgets.#", (m) => seen.push(m));
        </script>
        """,
    )
    page.goto(url)
    wait_for_status(hub, lambda s: s["subscriptions"] == 1)
    hub.send_message("widgets.gauge", 42)
    [message] = wait_seen(page, 1)
    assert (message["topic"], message["body"]) == ("widgets.gauge", 42)
    assert page.evaluate("moksha.url") == base
    assert page.evaluate("moksha.transport") == "websocket"


def test_server_sent_events_when_the_browser_has_no_websocket(
    start_hub: StartHub, page: Page
) -> None:
    hub = start_hub()
    page.add_init_script("delete window.WebSocket")
    open_client(page, hub)
    subscribe(page, hub, "demo.#")
    assert live_status(hub)["sse"] == 1
    hub.send_message("demo.news", "via SSE")
    [message] = wait_seen(page, 1)
    assert (message["topic"], message["body"]) == ("demo.news", "via SSE")
    assert page.evaluate("moksha.transport") == "sse"
    page.evaluate("moksha.send_message('demo.news', 'up')")
    assert "Server-Sent Events" in page.evaluate("errors")[0]["error"]


def test_server_sent_events_from_another_origin(
    start_hub: StartHub, page: Page, other_origin: Site
) -> None:
    hub = start_hub({"moksha.livesocket.allowed_origins": other_origin.url})
    base = hub.livesocket_url
    page.add_init_script("delete window.WebSocket")
    page.goto(other_origin.page("sse.html", f'<script src="{base}/livesocket/moksha.js"></script>'))
    page.evaluate(RECORD)
    subscribe(page, hub, "demo.#")
    hub.send_message("demo.news", "via SSE")
    [message] = wait_seen(page, 1)
    assert message["body"] == "via SSE"
