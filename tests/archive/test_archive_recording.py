"""Recording: every message once, with what datagrepper's searches need; retention; migrations."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from moksha.archive import ArchiveStore
from moksha.archive.models import DEAD, MESSAGES, PACKAGES, USERS, metadata
from moksha.archive.rows import DEAD_LETTER_HEADER, Categorizer, message_rows
from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer
from moksha.hub.central import DEAD_LETTER_HEADER as HUB_DEAD_LETTER_HEADER
from moksha.message import Message
from moksha.schema import Message as SchemaClass
from moksha.schema import Schema, SchemaMessage
from support import until

# A topic and body of fedora-messaging-the-new-hotness-schema (installed by the test extra):
# its schema class names the package; the user it names is None (not a user).
HOTNESS_TOPIC = "org.fedoraproject.prod.hotness.update.drop"
HOTNESS_BODY = {
    "reason": "rawhide",
    "trigger": {"msg": {"package": {"name": "python-moksha"}}, "topic": "org.x"},
}


def stored(store: ArchiveStore, table: Any = MESSAGES) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def test_the_migrations_make_the_tables_the_code_declares(store: ArchiveStore) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": "moksha_archive_alembic_version"}
        )
        differences = compare_metadata(context, metadata)
    assert differences == []
    # Headers are JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
    with store.engine.connect() as connection:
        kind = MigrationContext.configure(connection).dialect.name
    if kind == "postgresql":
        with store.engine.connect() as connection:
            column_type = connection.exec_driver_sql(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = 'moksha_archive_messages' AND column_name = 'headers'"
            ).scalar_one()
        assert column_type == "jsonb"


async def test_the_hub_records_every_message_once_even_when_redelivered(
    archive_config: dict[str, Any],
) -> None:
    async with CentralMokshaHub(archive_config, consumers=[], producers=[]) as hub:
        store = ArchiveStore(archive_config["moksha.archive.url"])
        first = await hub.publish("org.example.build.done", {"build": 1})
        await hub.publish(
            "org.example.build.failed",
            {"build": 2},
            headers={"fedora_messaging_user_alice": "true", "fedora_messaging_rpm_kernel": "true"},
        )
        # A broker redelivering: the same message id arrives again.
        backend = hub.backends[0]
        await backend.publish(Message(first.topic, first.body, first.headers, id=first.id))
        await hub.publish("org.example.build.done", {"build": 3})
        await until(lambda: stored(store) >= 3)
        await until(lambda: hub.consumers[0].headcount_out >= 4)
    with store.engine.connect() as connection:
        rows = connection.execute(select(MESSAGES).order_by(MESSAGES.c.id)).mappings().all()
        users = connection.execute(select(USERS.c.name)).scalars().all()
        packages = connection.execute(select(PACKAGES.c.name)).scalars().all()
    store.close()
    assert [row["msg_id"] for row in rows].count(first.id) == 1
    assert len(rows) == 3
    assert rows[0]["topic"] == "org.example.build.done"
    assert rows[0]["category"] == "org"
    assert rows[0]["timestamp"] == datetime.fromtimestamp(first.timestamp_s, UTC)
    assert rows[0]["body"] == '{"build":1}'
    assert users == ["alice"] and packages == ["kernel"]


async def test_a_dead_letter_is_recorded_with_its_error_attempts_and_topic(
    archive_config: dict[str, Any],
) -> None:
    class Failing(Consumer):
        topic = "org.example.pay"

        async def consume(self, message: Message) -> None:
            raise ValueError("card declined")

    config = {**archive_config, "moksha.max_retries": "1", "moksha.retry_delay": "0.01"}
    store = ArchiveStore(archive_config["moksha.archive.url"])
    async with CentralMokshaHub(config, consumers=[Failing], producers=[]) as hub:
        sent = await hub.publish("org.example.pay", {"amount": 5})
        await until(lambda: stored(store, DEAD) >= 1)
    with store.engine.connect() as connection:
        dead = connection.execute(select(DEAD)).mappings().one()
        topics = connection.execute(select(MESSAGES.c.topic)).scalars().all()
    store.close()
    assert sorted(topics) == ["org.example.pay", "org.example.pay.dead"]
    assert dead["original_topic"] == "org.example.pay"
    assert dead["original_id"] == sent.id
    assert dead["error"] == "ValueError: card declined"
    assert dead["attempts"] == 2
    assert dead["state"] == "dead"
    assert HUB_DEAD_LETTER_HEADER == DEAD_LETTER_HEADER


async def test_only_the_configured_topics_are_recorded(archive_config: dict[str, Any]) -> None:
    config = {**archive_config, "moksha.archive.topics": "org.example.#"}
    store = ArchiveStore(archive_config["moksha.archive.url"])
    async with CentralMokshaHub(config, consumers=[], producers=[]) as hub:
        await hub.publish("elsewhere.thing", 1)
        await hub.publish("org.example.thing", 2)
        await until(lambda: stored(store) >= 1)
        await until(lambda: hub.consumers[0].headcount_out >= 1)
    with store.engine.connect() as connection:
        assert connection.execute(select(MESSAGES.c.topic)).scalars().all() == ["org.example.thing"]
    store.close()


def old_message(topic: str, days: float) -> Message:
    when = datetime.now(UTC) - timedelta(days=days)
    return Message(topic, {"days": days}, {"fedora_messaging_user_bob": "true"}, timestamp=when)


def test_retention_deletes_what_is_older_than_keep_days(store: ArchiveStore) -> None:
    store.record([old_message("org.old", 10), old_message("org.recent", 1)])
    assert store.purge_older_than(7) == 1
    with store.engine.connect() as connection:
        assert connection.execute(select(MESSAGES.c.topic)).scalars().all() == ["org.recent"]
        assert connection.execute(select(func.count()).select_from(USERS)).scalar_one() == 1


async def test_the_recorder_applies_retention(archive_config: dict[str, Any]) -> None:
    store = ArchiveStore(archive_config["moksha.archive.url"])
    store.record([old_message("org.old", 30)])
    config = {**archive_config, "moksha.archive.keep_days": "7"}
    async with CentralMokshaHub(config, consumers=[], producers=[]) as hub:
        await hub.publish("org.new", 1)

        def only_new() -> bool:
            with store.engine.connect() as connection:
                return connection.execute(select(MESSAGES.c.topic)).scalars().all() == ["org.new"]

        await until(only_new)
    with store.engine.connect() as connection:
        assert connection.execute(select(MESSAGES.c.topic)).scalars().all() == ["org.new"]
    store.close()


def test_the_category_is_the_word_after_the_prefix_as_in_datanommer() -> None:
    fedora = Categorizer(prefix="org.fedoraproject.prod")
    assert fedora("org.fedoraproject.prod.bodhi.update.comment") == "bodhi"
    assert fedora("other.bus.topic") == "other"
    assert Categorizer(word=2)("a.b.c.d") == "c"
    assert Categorizer(word=9)("a.b") is None
    row = message_rows(Message("org.x", {"agent": "carol"}), Categorizer()).message
    assert row["agent"] == "carol"


async def test_a_message_with_a_schema_is_recorded_with_what_its_schema_names(
    archive_config: dict[str, Any],
) -> None:
    store = ArchiveStore(archive_config["moksha.archive.url"])
    async with CentralMokshaHub(archive_config, consumers=[], producers=[]) as hub:
        await hub.publish(HOTNESS_TOPIC, HOTNESS_BODY)  # on the memory bus: no fedora headers
        await until(lambda: stored(store) >= 1)
    with store.engine.connect() as connection:
        assert connection.execute(select(PACKAGES.c.name)).scalars().all() == ["python-moksha"]
        assert connection.execute(select(USERS.c.name)).scalars().all() == []
    store.close()


class Named(SchemaClass):
    """Names users (one also in a header), an agent, and things that are not names."""

    topic = "org.named"

    @property
    def usernames(self) -> list[Any]:
        return ["ralph", "", None, "alice"]

    @property
    def agent_name(self) -> str:
        return "bot"


def test_users_from_headers_and_schema_are_recorded_once_each_with_its_agent() -> None:
    headers = {"fedora_messaging_user_ralph": "true"}
    message = SchemaMessage(Message("org.named", {}, headers), Schema("named", Named))
    rows = message_rows(message, Categorizer())
    assert [user["name"] for user in rows.users] == ["ralph", "alice"]
    assert rows.message["agent"] == "bot"


class Fragile(SchemaClass):
    """A schema class whose own code fails on a body it accepted."""

    topic = "org.fragile"

    @property
    def usernames(self) -> list[str]:
        raise KeyError("owner")


def test_a_schema_that_fails_to_name_its_users_loses_nothing_else() -> None:
    headers = {"fedora_messaging_user_ralph": "true", "fedora_messaging_rpm_moksha": "true"}
    message = SchemaMessage(Message("org.fragile", {"n": 1}, headers), Schema("fragile", Fragile))
    rows = message_rows(message, Categorizer())
    assert [user["name"] for user in rows.users] == ["ralph"]
    assert [package["name"] for package in rows.packages] == ["moksha"]
    assert rows.message["body"] == '{"n":1}'


def test_a_restart_keeps_the_archive_and_its_schema_version(store: ArchiveStore) -> None:
    store.record([old_message("org.kept", 1)])
    url = store.engine.url.render_as_string(hide_password=False)
    # A new process (a hub restarting) runs the migrations again: nothing to do.
    started = subprocess.run(
        [sys.executable, "-c", f"from moksha.archive import ArchiveStore; ArchiveStore({url!r})"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    with store.engine.connect() as connection:
        versions = connection.exec_driver_sql(
            "SELECT version_num FROM moksha_archive_alembic_version"
        ).scalars()
        assert list(versions) == ["0001"]
        assert connection.execute(select(MESSAGES.c.topic)).scalars().all() == ["org.kept"]
