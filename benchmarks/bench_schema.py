"""What checking schemas costs on the publish path, against the same hub not checking.

In one run, on the same bodies (about 200 bytes of JSON, a typical schema:
required fields, types, a pattern, a nested object, a minimum):

* *validator*: µs per body for ``jsonschema``'s cached validator and for the
  ``fastjsonschema``-compiled one Moksha uses (why it uses it);
* *memory publish*: ``await hub.publish()`` rate on the memory bus with no
  consumer, ``moksha.schema.mode = enforce`` vs ``off``;
* *memory end to end*: ``await hub.publish()`` to one ``async def`` consumer,
  enforce vs off (the consumer receives the schema's view);
* *amqp publish*: confirmed ``await hub.publish()`` on RabbitMQ (127.0.0.1:5672,
  skipped when it does not answer), enforce vs off.

Each case prints its rates and the ratio checked / unchecked.  Target: >= 0.7.

    chrt -f 10 python benchmarks/bench_schema.py [--messages N] [--repeat R]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import time
import timeit
from typing import Any

import fastjsonschema
import jsonschema

from moksha.hub import CentralMokshaHub, MokshaHub
from moksha.hub.api import Consumer
from moksha.schema import Message as SchemaClass

TOPIC = "bench.schema.build.done"
TARGET = 0.7


class BuildDone(SchemaClass):
    topic = "bench.schema.build.*"
    body_schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": ["seq", "package", "version", "owner"],
        "properties": {
            "seq": {"type": "integer", "minimum": 0},
            "package": {"type": "string"},
            "version": {"type": "string", "pattern": "^[0-9.]+$"},
            "owner": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}},
            },
            "text": {"type": "string"},
        },
    }


def make_bodies(n: int) -> list[dict[str, Any]]:
    text = "lorem ipsum dolor sit amet, consectetur adipiscing elit " * 2
    return [
        {
            "seq": i,
            "package": f"pkg{i % 50}",
            "version": "1.2.3",
            "owner": {"name": f"user{i % 97}"},
            "text": text[:100],
        }
        for i in range(n)
    ]


def validators(bodies: list[dict[str, Any]]) -> None:
    slow = jsonschema.Draft7Validator(BuildDone.body_schema)
    fast = fastjsonschema.compile(BuildDone.body_schema)
    n = len(bodies)
    for name, check in (("jsonschema (cached validator)", slow.validate), ("fastjsonschema", fast)):
        seconds = timeit.timeit(lambda check=check: [check(b) for b in bodies], number=1)
        print(f"  validator {name:32s} {seconds / n * 1e6:6.2f} µs per body")


class Sink(Consumer):
    topic = "bench.schema.#"
    target = 0
    count = 0
    done: asyncio.Event | None = None

    async def consume(self, message: Any) -> None:
        type(self).count += 1
        if type(self).count == type(self).target and type(self).done is not None:
            type(self).done.set()


async def memory_publish(bodies: list[dict[str, Any]], mode: str) -> float:
    config = {"moksha.backends": "memory", "moksha.schema.mode": mode}
    async with MokshaHub(config, schemas=[BuildDone]) as hub:
        started = time.perf_counter()
        for body in bodies:
            await hub.publish(TOPIC, body)
        return len(bodies) / (time.perf_counter() - started)


async def memory_end_to_end(bodies: list[dict[str, Any]], mode: str) -> float:
    config = {"moksha.backends": "memory", "moksha.schema.mode": mode}
    Sink.count, Sink.target, Sink.done = 0, len(bodies), asyncio.Event()
    async with CentralMokshaHub(config, [Sink], [], schemas=[BuildDone]) as hub:
        started = time.perf_counter()
        for body in bodies:
            await hub.publish(TOPIC, body)
        async with asyncio.timeout(60 + len(bodies) / 5000):
            await Sink.done.wait()
        return len(bodies) / (time.perf_counter() - started)


async def amqp_publish(bodies: list[dict[str, Any]], mode: str) -> float:
    config = {
        "moksha.backends": "amqp",
        "amqp_broker": "amqp://guest:guest@127.0.0.1:5672/",
        "moksha.schema.mode": mode,
    }
    async with MokshaHub(config, schemas=[BuildDone]) as hub:
        started = time.perf_counter()
        for body in bodies:
            await hub.publish(TOPIC, body)
        return len(bodies) / (time.perf_counter() - started)


def rabbitmq_answers() -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", 5672)) == 0


def compare(name: str, case: Any, bodies: list[dict[str, Any]], repeat: int) -> None:
    rates: dict[str, list[float]] = {"off": [], "enforce": []}
    for _ in range(repeat):
        for mode in ("off", "enforce"):  # interleaved: both see the same noise
            rates[mode].append(asyncio.run(case(bodies, mode)))
    off, on = statistics.median(rates["off"]), statistics.median(rates["enforce"])
    ratio = on / off
    verdict = "PASS" if ratio >= TARGET else "MISS"
    print(f"  {name:20s} off {off:10,.0f}/s  enforce {on:10,.0f}/s  ratio {ratio:.2f}  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--amqp-messages", type=int, default=3_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bodies = make_bodies(args.messages)
    print(f"{args.messages} messages (amqp: {args.amqp_messages}), {args.repeat} repeats, medians")
    validators(bodies)
    compare("memory publish", memory_publish, bodies, args.repeat)
    compare("memory end to end", memory_end_to_end, bodies, args.repeat)
    if rabbitmq_answers():
        compare("amqp publish", amqp_publish, bodies[: args.amqp_messages], args.repeat)
    else:
        print("  amqp publish         skipped: nothing answers on 127.0.0.1:5672")


if __name__ == "__main__":
    main()
