"""Where settings come from, below code: the INI file (named, or found) and the environment.

Each source is read into a layer of entries ``(key, raw value, source)``, old
spellings renamed to current ones; :func:`moksha.config.load_config` applies
the layers, lowest precedence first, over the defaults.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from moksha.config.keys import KEY_ALIASES, KEYS
from moksha.errors import ConfigError

__all__ = [
    "CONFIG_VARIABLE",
    "Entry",
    "entries",
    "environment_entries",
    "find_config_file",
    "read_ini",
]

CONFIG_VARIABLE = "MOKSHA_CONFIG"
_SEARCH_NAMES = ("development.ini", "production.ini")
_SYSTEM_FILES = (Path("/etc/moksha/production.ini"), Path("/etc/moksha/development.ini"))
_SECTIONS = ("app:main", "moksha")
_INI_DEFAULTS = ("here", "__file__")  # set by us for interpolation, not settings
_INI_DELIMITERS = ("=", ":")


Entry = tuple[str, Any, str]  # (key name, raw value, source)


def entries(values: Mapping[str, Any], source: str) -> list[Entry]:
    """Entries of one file or code mapping, with old spellings renamed."""
    found = []
    for name, value in values.items():
        canonical = KEY_ALIASES.get(name, name)
        if canonical != name and canonical in values:
            continue  # the current spelling wins over the old one
        found.append((canonical, value, source))
    return found


def environment_entries(environ: Mapping[str, str]) -> list[Entry]:
    """Entries of the ``MOKSHA_*`` variables that set known keys (others are ignored)."""
    return [
        (key.name, environ[key.env_var], f"environment {key.env_var}")
        for key in KEYS
        if key.env_var in environ
    ]


class _PasteParser(configparser.ConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return optionstr  # keep keys' case, as Paste does


def read_ini(path: Path, named_by: str) -> list[Entry]:
    """Read the settings section of an INI file as entries whose source is its path."""
    where = os.path.abspath(path)
    if not os.path.exists(where):
        named = "" if named_by == "code" else f" (named by {named_by})"
        raise ConfigError(
            f"the config file {where}{named} does not exist; give the path of an INI "
            "file, or leave it out to use the built-in defaults.",
            source=named_by,
        )
    parser = _PasteParser(defaults={"here": os.path.dirname(where), "__file__": where})
    try:
        with open(where, encoding="utf-8") as file:
            text = file.read()
        _check_separators(where, text)
        parser.read_string(text, source=where)
        section = next(
            (name for name in _SECTIONS if parser.has_section(name)), configparser.DEFAULTSECT
        )
        values = _app_db_urls(parser) | dict(parser.items(section))
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"config file {where} cannot be parsed: {exc}. Fix the file; write %% for a literal %.",
            source=where,
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"config file {where} cannot be read: {exc.strerror}.", source=where
        ) from None
    return entries({k: v for k, v in values.items() if k not in _INI_DEFAULTS}, where)


def _check_separators(where: str, text: str) -> None:
    """Refuse a settings line without ``=`` (or ``:``) between its key and value.

    configparser would read ``amqp_broker amqp://host`` as the key
    ``amqp_broker amqp`` (split at the URL's colon) and a line with neither as
    a parse error without the fix; this names the line and says what to write.

    Raises:
        ConfigError: naming the file, the line number and the line.
    """
    section = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;" or line[0].isspace():
            continue  # blank, comment, or the continuation of a value
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            continue
        if section not in (*_SECTIONS, configparser.DEFAULTSECT):
            continue  # other programs' sections (Paste's [server:main], logging) are theirs
        cuts = [stripped.find(mark) for mark in _INI_DELIMITERS if mark in stripped]
        key = stripped[: min(cuts)].strip() if cuts else stripped
        if cuts and key and not any(char.isspace() for char in key):
            continue
        words = stripped.split(None, 1)
        example = f"{words[0]} = {words[1]}" if len(words) == 2 else f"{stripped} = VALUE"
        raise ConfigError(
            f"config file {where}, line {number}: {stripped!r} has no '=' between the key "
            f"and the value; write {example!r}",
            source=where,
        )


def _app_db_urls(parser: configparser.ConfigParser) -> dict[str, str]:
    """``sqlalchemy.url`` of ``[app:<name>]`` sections, as ``moksha.app_db.<name>.url``.

    Paste-era apps kept their database there; :mod:`moksha.app_db` reads the key.
    The settings section's own ``moksha.app_db.<name>.url`` wins over it.
    """
    urls = {}
    for section in parser.sections():
        kind, _, name = section.partition(":")
        if kind == "app" and name and f"{kind}:{name}" not in _SECTIONS:
            url = parser.get(section, "sqlalchemy.url", fallback=None)
            if url is not None:
                urls[f"moksha.app_db.{name}.url"] = url
    return urls


def find_config_file(
    cwd: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> Path | None:
    """Find the INI file to use when none is given.

    ``MOKSHA_CONFIG`` in the environment wins and is returned even if the file
    is missing, so that :func:`load_config` reports the mistake instead of
    quietly using defaults.  Otherwise the first that exists of, in order:
    ``<cwd>/development.ini``, ``<cwd>/production.ini``,
    ``/etc/moksha/production.ini``, ``/etc/moksha/development.ini``.

    Args:
        cwd: the directory to look in first (default: the current directory).
        environ: the environment (default: ``os.environ``).

    Returns:
        The path, or None when there is no file (which is not an error).
    """
    environ = os.environ if environ is None else environ
    base = Path.cwd() if cwd is None else Path(cwd)
    if environ.get(CONFIG_VARIABLE):
        return base / environ[CONFIG_VARIABLE]  # an absolute path replaces base
    candidates = [base / name for name in _SEARCH_NAMES] + list(_SYSTEM_FILES)
    return next((path for path in candidates if path.is_file()), None)
