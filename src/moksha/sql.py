"""The SQLAlchemy engines Moksha's own stores use (live-socket history, feed cache).

One place turns a database URL from the configuration into an engine, with the
same checks and the same SQLite settings for every store, and errors that name
the configuration key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from moksha.errors import ConfigError

__all__ = ["database_error", "store_engine"]


def store_engine(url: str, *, key: str, what: str) -> Engine:
    """An engine for the database at ``url`` (``sqlite:///path`` or any SQLAlchemy URL).

    Args:
        url: the database URL.
        key: the configuration key it came from, for error messages.
        what: what the database holds (``"feed cache"``), for error messages.

    Raises:
        ConfigError: the URL cannot be parsed or used, or a SQLite file's folder is missing.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        # Not echoed: an unparsable URL may still hold a password.
        raise ConfigError(
            f"this is not a database URL; write sqlite:///path/to/{what.replace(' ', '-')}.sqlite",
            key=key,
        ) from None
    options: dict[str, Any] = {}
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite and parsed.database in (None, "", ":memory:"):
        # One in-memory database shared by the worker threads.
        options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    elif sqlite and parsed.database and not parsed.query.get("uri"):
        folder = Path(parsed.database).parent
        if not folder.is_dir():
            raise ConfigError(
                f"the directory {str(folder)!r} for the {what} does not exist; "
                "create it or choose another path.",
                key=key,
            )
    try:
        engine = create_engine(parsed, **options)
    except (ArgumentError, ImportError) as exc:
        shown = parsed.render_as_string(hide_password=True)
        raise ConfigError(f"cannot use the database URL {shown!r}: {exc}.", key=key) from None
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # WAL: readers never wait for the writer; NORMAL sync stays consistent after
    # a crash, and a power cut may cost only the last transactions.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def database_error(exc: BaseException) -> str:
    """The database's own message, without SQLAlchemy's statement dump."""
    return str(getattr(exc, "orig", None) or exc)
