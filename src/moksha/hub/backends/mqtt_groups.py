"""What Moksha keeps on an MQTT broker for its consumer groups, kept on the broker itself.

MQTT cannot list a broker's sessions, so each group session records itself
as a retained message on ``moksha-groups/<client id>``: its group, patterns,
filter, and whether a hub is connected (the session's will turns that to
false when a hub dies).  ``moksha queues`` lists these records; deleting one
ends its session (a clean start with no expiry) and clears the record, and is
refused while a hub is connected.  Depths are not known to MQTT: 0 is shown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as paho

from moksha.errors import BackendError
from moksha.hub.backends.base import DurableQueue
from moksha.hub.backends.mqtt_client import MQTTConnection
from moksha.hub.backends.mqtt_wire import RECORDS, MQTTOptions

__all__ = ["RECORDS", "GroupRegistry"]

log = logging.getLogger("moksha.hub.backends.mqtt")

_READ_TIMEOUT = 5.0


def _record(group: str, patterns: Sequence[str], mqtt_filter: str, *, online: bool) -> bytes:
    entry = {"group": group, "patterns": list(patterns), "filter": mqtt_filter, "online": online}
    return json.dumps(entry).encode()


def _unawaited(future: asyncio.Future[Any]) -> None:
    """Let ``future`` finish on its own; a failure is logged, never left unretrieved.

    (A connection closed at once after sending still writes it out first:
    only its PUBACK goes unseen, hence debug.)
    """

    def done(f: asyncio.Future[Any]) -> None:
        if not f.cancelled() and f.exception() is not None:
            log.debug("MQTT group record's PUBACK not seen: %s", f.exception())

    future.add_done_callback(done)


class GroupRegistry:
    """Reads and writes the records of the group sessions on one broker."""

    def __init__(self, options: MQTTOptions) -> None:
        self._options = options

    def will(
        self, client_id: str, group: str, patterns: Sequence[str], mqtt_filter: str
    ) -> tuple[str, bytes]:
        """The topic and payload of a group session's record once no hub is connected."""
        return f"{RECORDS}/{client_id}", _record(group, patterns, mqtt_filter, online=False)

    async def _read(self) -> dict[str, dict[str, Any]]:
        """Every record on the broker, by client id."""
        found: dict[str, dict[str, Any]] = {}
        arrived: asyncio.Queue[paho.MQTTMessage] = asyncio.Queue()
        me = f"moksha:registry:{uuid.uuid4().hex[:12]}"
        reader = MQTTConnection(
            self._options,
            me,
            persistent=False,
            session_expiry=0,
            receive_maximum=1000,
            on_message=arrived.put_nowait,
        )
        await reader.open()
        try:
            await reader.subscribe(f"{RECORDS}/+", 1)
            # Retained records come right after the subscription; our marker after them.
            # (Its arrival is the proof: waiting for its PUBACK too costs Mosquitto's
            # Nagle delay, ~40 ms, as the PUBACK follows the marker's own delivery.)
            _unawaited(reader.publish_nowait(f"{RECORDS}/{me}", b""))
            async with asyncio.timeout(_READ_TIMEOUT):
                while True:
                    raw = await arrived.get()
                    reader.ack(raw)
                    name = raw.topic.split("/", 1)[1]
                    if name == me:
                        break
                    try:
                        entry = json.loads(raw.payload)
                    except ValueError:
                        continue
                    if isinstance(entry, dict) and "group" in entry:
                        found[name] = entry
        except TimeoutError:
            raise BackendError("the MQTT broker did not send the group records in time") from None
        finally:
            await reader.close()
        return found

    async def record(
        self,
        connection: MQTTConnection,
        group: str,
        patterns: Sequence[str],
        mqtt_filter: str,
    ) -> list[str]:
        """Record a group session as online; return filters an earlier run subscribed."""
        old = (await self._read()).get(connection.client_id, {})
        # Not awaited (see _read): QoS 1, paho resends it until the broker has it.
        _unawaited(
            connection.publish_nowait(
                f"{RECORDS}/{connection.client_id}",
                _record(group, patterns, mqtt_filter, online=True),
                retain=True,
            )
        )
        previous = old.get("filter")
        return [previous] if isinstance(previous, str) and previous != mqtt_filter else []

    async def list(self) -> list[DurableQueue]:
        """The group sessions Moksha keeps on this broker."""
        return [
            DurableQueue(
                name=name,
                group=str(entry["group"]),
                depth=0,
                consumers=1 if entry.get("online") else 0,
                patterns=tuple(entry.get("patterns", ())),
            )
            for name, entry in sorted((await self._read()).items())
        ]

    async def delete(self, name: str) -> None:
        """End the session ``name`` and clear its record.

        Raises:
            BackendError: no such record, or a hub is connected to it.
        """
        entry = (await self._read()).get(name)
        if entry is None:
            raise BackendError(f"mqtt: {name!r} is not a session Moksha keeps on this broker")
        if entry.get("online"):
            raise BackendError(f"mqtt: a hub is connected to session {name!r}; stop it first")
        ender = MQTTConnection(
            self._options,
            name,
            persistent=False,  # a clean start with no expiry throws the session away
            session_expiry=0,
            receive_maximum=1,
            on_message=lambda _raw: None,
        )
        await ender.open()
        try:
            await ender.publish_nowait(f"{RECORDS}/{name}", b"", retain=True)
        finally:
            await ender.close()
