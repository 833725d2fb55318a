"""``moksha_messages_published_total``: per topic, a bounded number of series."""

from __future__ import annotations

from monitoring_support import client, make_config
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from moksha.hub import CentralMokshaHub
from moksha.monitoring import Monitor
from moksha.monitoring.metrics import TOPICS_SHOWN

NAME = "moksha_messages_published_total"


async def published_series() -> dict[str, float]:
    async with (
        CentralMokshaHub(make_config(), [], []) as hub,
        Monitor(hub) as monitor,
        client(Starlette(routes=monitor.routes())) as http,
    ):
        for n in range(3):
            await hub.publish("org.example.busy", n)
        await hub.publish("org.example.quiet", 0)
        for build in range(200):  # a topic with an id in it: a new topic each time
            await hub.publish(f"org.example.build.{build}", build)
        response = await http.get("/metrics")
    assert response.status_code == 200
    return {
        sample.labels["topic"]: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == NAME
    }


async def test_the_busiest_topics_are_named_and_the_rest_sum_up_as_other() -> None:
    series = await published_series()

    assert series["org.example.busy"] == 3  # the busiest first, whatever came later
    assert len(series) == TOPICS_SHOWN + 1  # bounded, however many topics were used
    assert sum(series.values()) == 3 + 1 + 200  # every message counted once
    named = sum(value for topic, value in series.items() if topic != "(other)")
    assert series["(other)"] == 204 - named
