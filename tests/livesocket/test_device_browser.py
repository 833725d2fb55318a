"""An MQTT device reaches a browser through a hub whose consumers run on AMQP (issue 13).

The device is a plain paho-mqtt client publishing ``sensors/<room>/temp``; the hub
runs on AMQP and MQTT at once (consumers on AMQP, the first backend listed) and
bridges them; the page subscribes to ``sensors.*.temp`` through the live socket.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING
from uuid import uuid4

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from test_browser import open_client, subscribe

from moksha.hub import CentralMokshaHub
from support import BACKENDS, TIMEOUT, Inbox, consumer_of

if TYPE_CHECKING:
    from playwright.sync_api import Page


def test_an_mqtt_device_reaches_a_browser_through_a_hub_on_amqp(page: Page) -> None:
    room = f"kitchen{uuid4().hex[:8]}"  # the pattern is the issue's; the room is this run's
    reading = {"room": room, "celsius": 21.5}
    consumed = Inbox()
    settings = {
        **BACKENDS["mqtt"](),
        **BACKENDS["amqp"](),
        "moksha.backends": "amqp mqtt",  # consumers receive from the first: AMQP
        "moksha.livesocket.backend": "websocket",
        "moksha.livesocket.websocket.port": 0,
    }
    thermostat = consumer_of("sensors.*.temp", consumed)
    # Made on another thread: Playwright's sync API marks this one's event loop as running.
    with ThreadPoolExecutor(1) as pool:
        hub = pool.submit(CentralMokshaHub, settings, [thermostat], []).result()
    device = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    try:
        open_client(page, hub)
        subscribe(page, hub, "sensors.*.temp")
        device.connect("127.0.0.1", 1883)
        device.loop_start()
        sent = device.publish(f"sensors/{room}/temp", json.dumps(reading), qos=1)
        sent.wait_for_publish(TIMEOUT)

        assert reading in consumed.wait(1)  # the consumer, on AMQP
        page.wait_for_function("(room) => seen.some((m) => m.body.room === room)", arg=room)
        mine = page.evaluate("(room) => seen.filter((m) => m.body.room === room)", room)
        assert [(m["topic"], m["body"]) for m in mine] == [(f"sensors.{room}.temp", reading)]
    finally:
        device.disconnect()
        device.loop_stop()
        hub.close()
