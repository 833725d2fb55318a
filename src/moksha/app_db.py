"""Per-app databases: a plugin that declares ``app_db = "name"`` gets its own engine.

A consumer, producer, installed web app (``moksha.application`` /
``moksha.wsgiapp`` entry point) or the app a
:class:`~moksha.web.MokshaMiddleware` wraps, with a class attribute
``app_db = "name"``, gets, before it runs:

* ``self.engine``: a SQLAlchemy 2 :class:`~sqlalchemy.engine.Engine`;
* ``self.Session``: a :class:`~sqlalchemy.orm.sessionmaker` bound to it
  (``with self.Session() as session, session.begin(): ...``);
* a call of its ``init_model(engine)``, if it has one, once per hub start
  (create tables there: ``Base.metadata.create_all(engine)``).

The database's URL is the first of:

1. ``moksha.app_db.<name>.url`` (``[app:main]`` of the INI file, or code);
2. ``sqlalchemy.url`` in an ``[app:<name>]`` section of the INI file, as in
   Paste-era Moksha apps;
3. ``sqlite:///<moksha.data_dir>/<name>.sqlite``.

Plugins naming the same database share one engine (and one pool).  Engines
are disposed when the hub stops.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from moksha.config import Config
from moksha.errors import ConfigError
from moksha.sql import store_engine

__all__ = ["APP_DB_PREFIX", "AppDatabases", "app_db_url"]

APP_DB_PREFIX = "moksha.app_db."
"""The key family of app database URLs: ``moksha.app_db.<name>.url``."""

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def app_db_url(config: Config, name: str) -> tuple[str, str]:
    """The URL of app database ``name``, and the key it comes from.

    Args:
        config: the configuration (``[app:<name>] sqlalchemy.url`` is read into
            it as ``moksha.app_db.<name>.url`` by :func:`~moksha.config.load_config`).
        name: the database's name, as the plugin's ``app_db`` says.

    Returns:
        ``(url, key)``; ``key`` is ``moksha.data_dir`` for the default SQLite file.

    Raises:
        ConfigError: the name is not a usable name, or the URL setting is not text.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.endswith(".url"):
        raise ConfigError(
            f"app_db = {name!r} is not a database name; use letters, digits, _ . or -"
        )
    key = f"{APP_DB_PREFIX}{name}.url"
    url = config.extras.get(key)
    if url is None:
        return f"sqlite:///{Path(config.data_dir) / name}.sqlite", "moksha.data_dir"
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(
            "expected a database URL such as postgresql+psycopg://user@host/db",
            key=key,
            source=config.source(key),
        )
    return url.strip(), key


class AppDatabases:
    """The app databases of one hub: an engine per name, made when first asked for.

    Plugin constructors run in worker threads, so making an engine and running
    ``init_model`` are guarded by a lock.

    Args:
        config: supplies the URLs (see :func:`app_db_url`).
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._engines: dict[str, Engine] = {}
        self._initialised: set[tuple[str, Any]] = set()
        self._lock = threading.Lock()

    def engine(self, name: str) -> Engine:
        """The engine of database ``name``, made on first use.

        Raises:
            ConfigError: the name or its URL is unusable (a SQLite file's folder is missing).
        """
        with self._lock:
            engine = self._engines.get(name)
            if engine is None:
                url, key = app_db_url(self.config, name)
                engine = store_engine(url, key=key, what=f"{name} database")
                self._engines[name] = engine
            return engine

    def attach(self, plugin: Any) -> None:
        """Give ``plugin`` its ``engine`` and ``Session`` and run its ``init_model``.

        Does nothing for an object without ``app_db`` (or with ``app_db = None``).
        ``init_model`` runs once per database and function, however many
        instances share them.

        Raises:
            ConfigError: the database's name or URL is unusable.
            Exception: whatever ``init_model`` raised (the plugin does not start).
        """
        name = getattr(plugin, "app_db", None)
        if name is None:
            return
        engine = self.engine(name)
        plugin.engine = engine
        plugin.Session = sessionmaker(engine)
        init_model = getattr(plugin, "init_model", None)
        if not callable(init_model):
            return
        function = getattr(init_model, "__func__", init_model)
        with self._lock:
            if (name, function) in self._initialised:
                return
            init_model(engine)
            self._initialised.add((name, function))

    def dispose(self) -> None:
        """Close every engine's connections (the hub is stopping)."""
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
            self._initialised.clear()
        for engine in engines:
            engine.dispose()
