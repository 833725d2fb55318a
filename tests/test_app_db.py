"""Per-app databases: ``app_db = "name"`` gives a plugin its engine, sessions and init_model."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.engine import Engine

from moksha.app_db import AppDatabases, app_db_url
from moksha.config import load_config
from moksha.errors import ConfigError
from moksha.hub import CentralMokshaHub
from moksha.hub.api import Consumer, Producer
from moksha.web import MokshaMiddleware
from support import Inbox, require_service

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("MOKSHA_"):
            monkeypatch.delenv(name)


def ledger_table(name: str) -> tuple[MetaData, Table]:
    metadata = MetaData()
    table = Table(name, metadata, Column("id", Integer, primary_key=True), Column("what", String))
    return metadata, table


class LedgerModel:
    """What the consumer and the producer share: one database, one init_model."""

    app_db = "ledger"
    table_name = "ledger_entries"
    inits: list[str] = []

    def init_model(self, engine: Engine) -> None:
        metadata, _ = ledger_table(self.table_name)
        metadata.create_all(engine)
        LedgerModel.inits.append(engine.url.render_as_string(hide_password=True))


def ledger_plugins(table_name: str) -> tuple[type[Consumer], type[Producer], Inbox]:
    written = Inbox()

    class Model(LedgerModel):
        pass

    Model.table_name = table_name
    _, table = ledger_table(table_name)

    class Recorder(Model, Consumer):
        topic = "org.example.ledger"

        def consume(self, message: Any) -> None:
            with self.Session() as session, session.begin():
                session.execute(insert(table).values(what=message.body))
            written(message.body)

    class Auditor(Model, Producer):
        def count(self) -> int:
            with self.Session() as session:
                return int(session.scalar(select(func.count()).select_from(table)) or 0)

    return Recorder, Auditor, written


def run_ledger(config: dict[str, Any], table_name: str = "ledger_entries") -> tuple[Any, Any]:
    LedgerModel.inits.clear()
    recorder_cls, auditor_cls, written = ledger_plugins(table_name)
    with CentralMokshaHub(config, consumers=[recorder_cls], producers=[auditor_cls]) as hub:
        [recorder], [auditor] = hub.consumers, hub.producers
        hub.send_message("org.example.ledger", "coffee")
        hub.send_message("org.example.ledger", "tea")
        written.wait(2)
        counted = auditor.count()
        assert recorder.engine is auditor.engine  # one database, one engine and pool
    return counted, recorder.engine.url


def test_a_consumer_and_a_producer_share_a_sqlite_file_under_the_data_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "data").mkdir()
    counted, url = run_ledger({"moksha.data_dir": str(tmp_path / "data")})

    assert counted == 2  # the producer sees what the consumer wrote
    assert url.database == str(tmp_path / "data" / "ledger.sqlite")
    assert (tmp_path / "data" / "ledger.sqlite").is_file()
    assert len(LedgerModel.inits) == 1  # init_model ran once for the two of them


def test_the_default_data_directory_is_the_working_directory(tmp_path: Path) -> None:
    counted, _ = run_ledger({})
    assert counted == 2
    assert (tmp_path / "ledger.sqlite").is_file()


def test_an_app_section_of_the_ini_file_names_the_database(tmp_path: Path) -> None:
    ini = tmp_path / "development.ini"
    ini.write_text(
        "[app:main]\nmoksha.backends = memory\n\n"
        "[app:ledger]\nsqlalchemy.url = sqlite:///%(here)s/books.sqlite\n"
    )
    config = load_config(ini, environ={})
    assert app_db_url(config, "ledger") == (
        f"sqlite:///{tmp_path}/books.sqlite",
        "moksha.app_db.ledger.url",
    )
    assert config.source("moksha.app_db.ledger.url") == str(ini)

    counted, url = run_ledger(config)  # type: ignore[arg-type]
    assert counted == 2
    assert url.database == f"{tmp_path}/books.sqlite"


def test_the_moksha_key_wins_over_the_app_section(tmp_path: Path) -> None:
    ini = tmp_path / "development.ini"
    ini.write_text(
        "[app:main]\nmoksha.app_db.ledger.url = sqlite:///%(here)s/main.sqlite\n\n"
        "[app:ledger]\nsqlalchemy.url = sqlite:///%(here)s/section.sqlite\n"
    )
    url, key = app_db_url(load_config(ini, environ={}), "ledger")
    assert (url, key) == (f"sqlite:///{tmp_path}/main.sqlite", "moksha.app_db.ledger.url")


def test_a_missing_data_directory_is_named_with_the_fix(tmp_path: Path) -> None:
    databases = AppDatabases(load_config(overrides={"moksha.data_dir": "nowhere"}, environ={}))
    with pytest.raises(ConfigError, match=r"moksha.data_dir.*'nowhere'.*does not exist; create"):
        databases.engine("ledger")


def test_a_bad_name_or_url_says_what_to_write() -> None:
    databases = AppDatabases(
        load_config(overrides={"moksha.app_db.ledger.url": "not a url"}, environ={})
    )
    with pytest.raises(ConfigError, match=r"app_db = '\.\./x' is not a database name"):
        databases.engine("../x")
    with pytest.raises(
        ConfigError, match=r"moksha.app_db.ledger.url: this is not a database URL; write sqlite:///"
    ):
        databases.engine("ledger")


def test_a_consumer_whose_database_cannot_open_does_not_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder_cls, _, _ = ledger_plugins("ledger_entries")
    with CentralMokshaHub({"moksha.data_dir": "nowhere"}, consumers=[recorder_cls]) as hub:
        assert hub.consumers == []
    assert "Recorder cannot run" in caplog.text and "nowhere" in caplog.text


def test_objects_without_app_db_are_left_alone() -> None:
    databases = AppDatabases(load_config(environ={}, search=False))
    plain = object()
    databases.attach(plain)
    assert not hasattr(plain, "engine")


def test_postgresql() -> None:
    require_service("PostgreSQL", 5432)
    table_name = f"moksha_ledger_{uuid.uuid4().hex[:12]}"
    try:
        counted, url = run_ledger({"moksha.app_db.ledger.url": PG_URL}, table_name)
        assert counted == 2
        assert url.get_backend_name() == "postgresql"
    finally:
        engine = AppDatabases(
            load_config(overrides={"moksha.app_db.ledger.url": PG_URL}, environ={})
        ).engine("ledger")
        ledger_table(table_name)[0].drop_all(engine)
        engine.dispose()


# -- installed web apps -----------------------------------------------------

APP_MODULE = """
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


class Notes(Starlette):
    app_db = "notes"

    def __init__(self):
        super().__init__(routes=[Route("/", self.page)])

    def init_model(self, engine):
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE IF NOT EXISTS notes (body TEXT)"))
            connection.execute(text("INSERT INTO notes VALUES ('from init_model')"))

    async def page(self, request):
        with self.Session() as session:
            return PlainTextResponse(session.scalar(text("SELECT body FROM notes")))
"""


@pytest.fixture
def notes_app(tmp_path: Path) -> Iterator[None]:
    """A package installing the ASGI app ``notes`` that declares ``app_db = "notes"``."""
    site = tmp_path / "site"
    (site / "notes_app-0.1.dist-info").mkdir(parents=True)
    (site / "notes_app-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: notes-app\nVersion: 0.1\n"
    )
    (site / "notes_app-0.1.dist-info" / "entry_points.txt").write_text(
        "[moksha.application]\nnotes = notes_app:Notes\n"
    )
    (site / "notes_app.py").write_text(APP_MODULE)
    sys.path.insert(0, str(site))
    try:
        yield
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("notes_app", None)


async def test_an_installed_app_gets_its_database_under_the_middleware(
    notes_app: None, tmp_path: Path
) -> None:
    app = MokshaMiddleware(None, {"moksha.session.secret": "x" * 32})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        page = await http.get("/apps/notes/")
    await app.aclose()
    assert page.status_code == 200
    assert page.text == "from init_model"
    assert (tmp_path / "notes.sqlite").is_file()


async def test_the_app_the_middleware_wraps_gets_its_database_too(tmp_path: Path) -> None:
    from starlette.applications import Starlette

    class Notes(Starlette):
        app_db = "own_notes"

        def init_model(self, engine: Engine) -> None:
            ledger_table("notes")[0].create_all(engine)

    notes = Notes()
    app = MokshaMiddleware(notes, {"moksha.session.secret": "x" * 32})
    with notes.Session() as session:  # type: ignore[attr-defined]
        assert session.scalar(select(func.count()).select_from(ledger_table("notes")[1])) == 0
    await app.aclose()
    assert (tmp_path / "own_notes.sqlite").is_file()
