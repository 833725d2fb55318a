"""The real fedora-messaging library, run as its own process (its Twisted reactor apart).

python fedora_peer.py publish CONF TOPIC          publish a hotness UpdateDrop and a
                                                  base message; print their ids (JSON)
python fedora_peer.py consume CONF QUEUE TOPIC N  consume N messages with
                                                  fedora_messaging.api.consume; print
                                                  one JSON line per message it accepted
"""

from __future__ import annotations

import json
import sys
from typing import Any

from fedora_messaging import api, config, exceptions
from fedora_messaging import message as fm
from schemas_support import HOTNESS_BODY


def conf_text(queue_prefix: str = "") -> str:
    """A fedora-messaging config for the local RabbitMQ."""
    return (
        'amqp_url = "amqp://guest:guest@127.0.0.1:5672/%2F"\n'
        'publish_exchange = "amq.topic"\n'
        'topic_prefix = ""\n'
        "[client_properties]\n"
        'app = "moksha interop test"\n'
    )


def publish(topic: str) -> None:
    from hotness_schema import UpdateDrop

    drop = UpdateDrop(body=HOTNESS_BODY, topic=topic)
    base = fm.Message(body={"hello": "moksha"}, topic=topic + ".base")
    for message in (drop, base):
        api.publish(message)
    print(json.dumps({"ids": [drop.id, base.id], "sent_at": drop._headers["sent-at"]}))


def consume(queue: str, topic: str, count: int) -> None:
    seen = 0

    def callback(message: Any) -> None:
        nonlocal seen
        seen += 1
        line = {
            "class": type(message).__name__,
            "topic": message.topic,
            "id": message.id,
            "body": message.body,
            "headers": message._headers,
            "summary": message.summary,
            "usernames": message.usernames,
            "packages": message.packages,
            "severity": message.severity,
        }
        print(json.dumps(line, default=str), flush=True)
        if seen >= count:
            raise exceptions.HaltConsumer(exit_code=0)

    try:
        api.consume(
            callback,
            bindings=[{"exchange": "amq.topic", "queue": queue, "routing_keys": [f"{topic}.#"]}],
            queues={
                queue: {"durable": False, "auto_delete": False, "exclusive": False, "arguments": {}}
            },
        )
    except exceptions.HaltConsumer as halt:  # our own stop, after the last message
        sys.exit(halt.exit_code)


if __name__ == "__main__":
    command, conf = sys.argv[1], sys.argv[2]
    config.conf.load_config(conf)
    if command == "publish":
        publish(sys.argv[3])
    else:
        consume(sys.argv[3], sys.argv[4], int(sys.argv[5]))
