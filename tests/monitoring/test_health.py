"""``/live`` and ``/ready``, as a load balancer or an orchestrator probes them."""

from __future__ import annotations

import httpx
from monitoring_support import FlakyBackend, Thermometer, client, make_config, serving
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from moksha.hub import CentralMokshaHub
from moksha.monitoring import Monitor, MonitoringApp
from support import TIMEOUT


async def test_a_running_hub_is_live_and_ready_over_http() -> None:
    async with (
        CentralMokshaHub(make_config(), [Thermometer], []) as hub,
        Monitor(hub) as monitor,
        serving(Starlette(routes=monitor.routes())) as url,
        httpx.AsyncClient(base_url=url, trust_env=False, timeout=TIMEOUT) as http,
    ):
        live = await http.get("/live")
        ready = await http.get("/ready")
    assert live.status_code == 200
    assert live.json()["live"] is True
    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True,
        "status": "ready",
        "reasons": [],
        "warnings": [],
        "state": "running",
        "backends": {"memory": True},
        "consumers": 1,
    }


async def test_not_ready_while_a_backend_is_disconnected() -> None:
    config = make_config()
    backend = FlakyBackend(config)
    async with (
        CentralMokshaHub(config, [Thermometer], [], backends=[backend]) as hub,
        client(Starlette(routes=Monitor(hub).routes())) as http,
    ):
        backend.up = False
        down = await http.get("/ready")
        live = await http.get("/live")
        backend.up = True
        up = await http.get("/ready")
    assert down.status_code == 503
    assert down.json()["reasons"] == ["backend memory is not connected"]
    assert down.json()["backends"] == {"memory": False}
    assert live.status_code == 200, "a lost broker is not a reason to restart the process"
    assert up.status_code == 200


async def test_not_ready_once_the_hub_stopped() -> None:
    hub = CentralMokshaHub(make_config(), [], [])
    await hub.start()
    async with client(Starlette(routes=Monitor(hub).routes())) as http:
        await hub.aclose()
        ready = await http.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["reasons"] == ["the hub is closed"]


async def test_monitoring_app_answers_its_paths_and_passes_the_rest_on() -> None:
    async def home(_request: object) -> PlainTextResponse:
        return PlainTextResponse("the site")

    site = Starlette(routes=[Route("/", home)])
    async with (
        CentralMokshaHub(make_config(), [], []) as hub,
        client(MonitoringApp(site, Monitor(hub), status=True)) as http,
    ):
        page = await http.get("/")
        ready = await http.get("/ready")
        status = await http.get("/_moksha/hub/status")
    assert page.text == "the site"
    assert ready.status_code == 200
    assert status.json()["hub"]["state"] == "running"
