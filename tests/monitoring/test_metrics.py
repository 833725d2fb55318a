"""``/metrics``: scraped over HTTP while messages flow, parsed as Prometheus parses it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets
from monitoring_support import (
    FAIL,
    PATTERN,
    TOPIC,
    Clock,
    FlakyBackend,
    Gate,
    Thermometer,
    client,
    make_config,
    serving,
)
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from moksha.hub import CentralMokshaHub
from moksha.hub.api.consumer import TIMES_KEPT
from moksha.monitoring import Monitor, MonitoringApp
from moksha.monitoring.tally import ConsumerTally
from support import TIMEOUT, until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample, keyed by name and labels (the parser raises on a malformed exposition)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def consumer_labels(name: str = "Thermometer", topic: str = PATTERN, **more: str) -> frozenset:
    return frozenset(
        {"consumer": name, "module": Thermometer.__module__, "topic": topic, **more}.items()
    )


async def scrape(http: httpx.AsyncClient, url: str) -> Samples:
    response = await http.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


async def test_counters_grow_while_messages_flow_scraped_on_a_real_port() -> None:
    config = make_config()
    async with (
        CentralMokshaHub(config, [Thermometer], [Clock]) as hub,
        Monitor(hub) as monitor,
        serving(Starlette(routes=monitor.routes())) as url,
        httpx.AsyncClient(trust_env=False, timeout=TIMEOUT) as http,
    ):
        received = ("moksha_consumer_messages_received_total", consumer_labels())
        consumed = ("moksha_consumer_messages_consumed_total", consumer_labels())
        before = await scrape(http, url)

        async def publish(count: int) -> None:
            for n in range(count):
                await hub.publish(TOPIC, FAIL if n == 0 else n)

        publishing = asyncio.create_task(publish(50))
        during = await scrape(http, url)  # while they flow: whatever it says must parse
        await publishing
        [thermometer] = hub.consumers
        await until(lambda: len(thermometer.stats()["times"]) == 50)  # each one finished
        after = await scrape(http, url)

    assert before[received] == 0
    assert before[received] <= during[received] <= after[received] == 50
    assert after[consumed] == 50
    assert after[("moksha_consumer_exceptions_total", consumer_labels())] == 1
    assert after[("moksha_consumer_backlog", consumer_labels())] == 0
    assert after[("moksha_consumer_processing_seconds_count", consumer_labels())] == 50
    inf_bucket = ("moksha_consumer_processing_seconds_bucket", consumer_labels(le="+Inf"))
    assert after[inf_bucket] == 50
    assert after[("moksha_consumer_processing_seconds_sum", consumer_labels())] > 0
    assert after[("moksha_backend_connected", frozenset({("backend", "memory")}))] == 1
    assert after[("moksha_hub_ready", frozenset())] == 1
    producer = frozenset({"producer": "Clock", "module": Clock.__module__}.items())
    assert after[("moksha_producer_failures_total", producer)] == 0
    assert after[("moksha_producer_last_poll_timestamp_seconds", producer)] > 0
    assert ("process_resident_memory_bytes", frozenset()) in after


async def test_backlog_shows_messages_waiting() -> None:
    async with CentralMokshaHub(make_config(), [Gate], []) as hub, Monitor(hub) as monitor:
        [gate] = hub.consumers
        for n in range(5):
            await hub.publish("org.example.gate", n)
        await until(lambda: gate.stats()["headcount_out"] == 1)  # the first one is in consume
        async with client(Starlette(routes=monitor.routes())) as http:
            samples = await scrape(http, "http://testserver")
        Gate.opened.set()
    labels = frozenset(
        {"consumer": "Gate", "module": Gate.__module__, "topic": "org.example.gate"}.items()
    )
    assert samples[("moksha_consumer_backlog", labels)] == 4


async def test_openmetrics_when_the_scraper_asks_for_it() -> None:
    async with (
        CentralMokshaHub(make_config(), [Thermometer], []) as hub,
        Monitor(hub) as monitor,
        client(Starlette(routes=monitor.routes())) as http,
    ):
        response = await http.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


async def test_live_socket_connections_and_subscriptions() -> None:
    config = make_config(
        **{"moksha.livesocket.backend": "websocket", "moksha.livesocket.websocket.port": 0}
    )
    async with CentralMokshaHub(config, [], []) as hub, Monitor(hub) as monitor:
        assert hub.livesocket_url is not None
        ws_url = hub.livesocket_url.replace("http://", "ws://") + "/livesocket/ws"
        async with (
            websockets.connect(ws_url) as browser,
            client(MonitoringApp(Starlette(), monitor)) as http,
        ):
            await browser.send(json.dumps({"topic": "__topic_subscribe__", "body": "org.#"}))
            await until(
                lambda: hub.livesocket is not None and hub.livesocket.stats()["subscriptions"] == 1
            )
            samples = await scrape(http, "http://testserver")
    assert samples[("moksha_livesocket_clients", frozenset({("transport", "websocket")}))] == 1
    assert samples[("moksha_livesocket_clients", frozenset({("transport", "sse")}))] == 0
    assert samples[("moksha_livesocket_subscriptions", frozenset())] == 1
    assert samples[("moksha_livesocket_slow_disconnects_total", frozenset())] == 0


async def test_a_backend_that_comes_back_counts_as_a_reconnection() -> None:
    config = make_config()
    backend = FlakyBackend(config)
    async with CentralMokshaHub(config, [], [], backends=[backend]) as hub:
        monitor = Monitor(hub)
        app = Starlette(routes=monitor.routes())
        name = frozenset({("backend", "memory")})
        async with client(app) as http:
            backend.up = False
            down = await scrape(http, "http://testserver")
            backend.up = True
            up = await scrape(http, "http://testserver")
    assert down[("moksha_backend_connected", name)] == 0
    assert down[("moksha_hub_ready", frozenset())] == 0
    assert up[("moksha_backend_connected", name)] == 1
    assert up[("moksha_backend_reconnects_total", name)] == 1


def fresh_times(seconds: float, count: int) -> list[float]:
    """``count`` equal processing times, each its own object, as a consumer records them."""
    return [seconds * 1.0 for _ in range(count)]


def stats(received: int, consumed: int, times: list[float], **more: Any) -> dict[str, Any]:
    return {"headcount_in": received, "headcount_out": consumed, "times": times, **more}


def test_equal_processing_times_are_each_counted() -> None:
    tally = ConsumerTally("C", "m", ("t",))
    first = fresh_times(0.002, 3)
    tally.add(stats(3, 3, first), reset=False)
    tally.add(stats(5, 5, first + fresh_times(0.002, 2)), reset=False)
    assert tally.processing.count == 5
    assert tally.received == 5


def test_times_past_what_a_consumer_keeps_still_add_up_to_the_messages_consumed() -> None:
    tally = ConsumerTally("C", "m", ("t",))
    # 2500 messages between two reads; the consumer kept the newest TIMES_KEPT times.
    tally.add(stats(2500, 2500, fresh_times(0.003, TIMES_KEPT)), reset=False)
    assert tally.processing.count == 2500
    assert abs(tally.processing.total - 2500 * 0.003) < 1e-9


def test_a_reset_by_someone_else_loses_no_later_counts() -> None:
    tally = ConsumerTally("C", "m", ("t",))
    tally.add(stats(10, 10, fresh_times(0.001, 10)), reset=False)
    # A plugin called __json__ (counters back to 0), then 4 more arrived.
    tally.add(stats(4, 4, fresh_times(0.001, 4)), reset=False)
    assert (tally.received, tally.consumed, tally.processing.count) == (14, 14, 14)
