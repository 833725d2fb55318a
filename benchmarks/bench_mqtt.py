"""MQTT end to end and drain on Mosquitto: Moksha against plain paho-mqtt doing the same work.

``--messages`` distinct ~200-byte JSON bodies, publisher and consumer in two
processes (harness: ``bus_bench.py``).  Both sides work in the same mode:

* publisher: QoS 1, at most ``--window`` publishes awaiting their PUBACK,
  each with Moksha's metadata (id and timestamp as MQTT 5 user properties,
  the content type), so both consumers parse the same packets;
* consumer: a persistent MQTT 5 session (fixed client id, clean start off,
  session expiry) with one shared subscription ``$share/<group>/<topic>``,
  QoS 1, Receive Maximum 100, each message decoded from JSON, counted, and
  only then acknowledged (paho's manual acks: at-least-once).

Sides: *paho-mqtt* (the baseline: a ``Client`` with ``loop_start``, counting
in ``on_message``) and *Moksha* (``MokshaHub.publish`` gathered per window;
a ``CentralMokshaHub`` running one ``async def consume`` consumer in blocking
mode).  FastStream has no MQTT broker, so it is not a side here.  Target:
Moksha >= 0.8x paho-mqtt.  Run from the repository root, on a quiet machine
or under ``chrt -f 10``::

    python benchmarks/bench_mqtt.py [--messages N] [--repeat R] [--window W]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import paho.mqtt.client as paho
from bus_bench import (
    Tally,
    body_size,
    compare,
    consume_with_hub,
    publish_with_hub,
    report,
    run_timeout,
)
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from moksha.config import Config, load_config
from moksha.hub.backends.mqtt import MQTTBackend

HOST, PORT = "127.0.0.1", 1883
RUN = os.environ.setdefault("BENCH_RUN_ID", uuid.uuid4().hex[:8])
RAW_TOPIC = f"bench/mqtt/{RUN}/raw"
MOKSHA_TOPIC = f"bench.mqtt.{RUN}.moksha"
RAW_CLIENT = f"bench-raw-{RUN}"
INFLIGHT = 100


# -- paho-mqtt ---------------------------------------------------------------


def _paho(client_id: str = "", **kwargs: Any) -> paho.Client:
    return paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5, **kwargs
    )


def consume_raw(n: int, ready: Callable[[], None]) -> Tally:
    done, connected, subscribed = threading.Event(), threading.Event(), threading.Event()
    tally = Tally(n, done.set)
    client = _paho(RAW_CLIENT, manual_ack=True)

    def on_message(c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        tally.work(json.loads(message.payload))
        c.ack(message.mid, message.qos)

    client.on_message = on_message
    client.on_connect = lambda *_: connected.set()
    client.on_subscribe = lambda *_: subscribed.set()
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 300
    properties.ReceiveMaximum = INFLIGHT
    client.connect(HOST, PORT, clean_start=False, properties=properties)
    client.loop_start()
    try:
        connected.wait(10)
        client.subscribe(f"$share/{RAW_CLIENT}/{RAW_TOPIC}", options=SubscribeOptions(qos=1))
        subscribed.wait(10)
        ready()
        done.wait(run_timeout(n))
    finally:
        client.disconnect()
        client.loop_stop()
    return tally


def publish_raw(bodies: Sequence[dict[str, Any]], window: int) -> tuple[float, float]:
    confirmed, connected = threading.Event(), threading.Event()
    count = 0

    def on_publish(*_: Any) -> None:
        nonlocal count
        count += 1
        if count == len(bodies):
            confirmed.set()

    client = _paho()
    client.max_inflight_messages_set(window)
    client.on_publish = on_publish
    client.on_connect = lambda *_: connected.set()
    client.connect(HOST, PORT)
    client.loop_start()
    connected.wait(10)
    started = time.monotonic()
    for seq, body in enumerate(bodies):
        # The same metadata as Moksha's wire (id, timestamp, content type), made the
        # plain way: the consumer's paho parses them the same.
        properties = Properties(PacketTypes.PUBLISH)
        properties.ContentType = "application/json"
        properties.UserProperty = [
            ("moksha-id", f"{RUN}-{seq}"),
            ("moksha-timestamp", repr(time.time())),
        ]
        client.publish(RAW_TOPIC, json.dumps(body), qos=1, properties=properties)
    confirmed.wait(run_timeout(len(bodies)))
    finished = time.monotonic()
    client.disconnect()
    client.loop_stop()
    return started, finished


# -- Moksha ------------------------------------------------------------------


def moksha_config() -> Config:
    overrides = {
        "mqtt_url": f"mqtt://{HOST}:{PORT}",
        "mqtt_node": "bench",
        "mqtt_session_expiry": 300,
        "mqtt_inflight": INFLIGHT,
        "moksha.blocking_mode": True,
    }
    return load_config(overrides=overrides, environ={}, search=False)


async def consume_moksha(n: int, ready: Callable[[], None]) -> Tally:
    name = ("bench_mqtt", f"MQTTBenchConsumer_{RUN}")
    return await consume_with_hub(moksha_config(), MOKSHA_TOPIC, name, n, ready)


async def publish_moksha(bodies: Sequence[dict[str, Any]], window: int) -> tuple[float, float]:
    """At most ``window`` publishes awaiting their PUBACK (sliding, as paho's max_inflight)."""
    return await publish_with_hub(moksha_config(), MOKSHA_TOPIC, bodies, window)


async def cleanup() -> None:
    """End both sides' sessions (what a drain left queued goes with them)."""
    ender = _paho(RAW_CLIENT)
    ender.connect(HOST, PORT, clean_start=True)  # no session expiry: gone on disconnect
    ender.disconnect()
    backend = MQTTBackend(moksha_config())
    for queue in await backend.durable_queues():
        if RUN in queue.group:
            await backend.delete_durable_queue(queue.name)


SIDES = {"Moksha": (consume_moksha, publish_moksha), "paho-mqtt": (consume_raw, publish_raw)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Mosquitto drops QoS 1 messages past max_queued_messages (1000 by default) queued for
    # one session, online or not: a run must not let its consumer fall further behind.
    parser.add_argument("--messages", type=int, default=1000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per side (median)")
    parser.add_argument("--window", type=int, default=100, help="publishes awaiting PUBACK")
    parser.add_argument("--drain", type=int, default=1000, help="messages queued for the drain")
    parser.add_argument("--measures", default="e2e,drain", help="e2e, drain or both")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.repeat < 1 or args.window < 1:
        parser.error("--messages, --repeat and --window must be at least 1")
    print(
        f"python {platform.python_version()}, paho-mqtt {metadata.version('paho-mqtt')}; "
        f"Mosquitto on {HOST}:{PORT}; {os.cpu_count()} cores; messages: {args.messages} "
        f"(body {body_size(args.messages):.0f} bytes), window {args.window}, "
        f"repeat {args.repeat} (median)"
    )
    began = time.perf_counter()
    # Mosquitto keeps at most max_queued_messages (1000 by default) for an offline session.
    drained = min(args.messages, args.drain)
    for drain, n, title in (
        (False, args.messages, "end to end (first publish to N-th consumed)"),
        (True, drained, f"drain ({drained} queued in the session, consumer start to last)"),
    ):
        if ("drain" if drain else "e2e") not in args.measures:
            continue
        runs = compare(
            SIDES, n=n, window=args.window, repeat=args.repeat, drain=drain, cleanup=cleanup
        )
        report(title, runs, "Moksha", {"paho-mqtt": 0.8})
    print(f"\ntotal time {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
