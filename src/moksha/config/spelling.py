"""Telling a misspelt Moksha key from a plugin's own key.

Keys Moksha does not know are kept for plugins, so an unknown key is never an
error.  But ``amqp_brokr = ...`` silently leaves the hub on the in-memory bus:
an unknown key that is *close* to a known one gets a warning naming the key
it probably meant.  Close means one of:

* at most two edits (insert, delete, replace a character, or swap two
  neighbours) from a known key or an old spelling of one
  (``moksha.worker_per_consumer``), for keys long enough that two edits do
  not make any word look like any other;
* the same dotted prefix as known keys, with a last part that looks like
  one of theirs (``moksha.livesocket.websocket.prot`` for ``...port``).

Key families that Moksha reads by prefix (``moksha.auth.allow.<kind>.<name>``)
share no prefix with a declared key, so they are never taken for typos.

>>> likely_key("amqp_brokr")
'amqp_broker'
>>> likely_key("moksha.livesocket.websocket.prot")
'moksha.livesocket.websocket.port'
>>> likely_key("myapp.database_url") is None
True

Environment variables are compared with the variables of known keys:

>>> likely_variable("MOKSHA_AMQP_BROKR")
'MOKSHA_AMQP_BROKER'
>>> likely_variable("MOKSHA_HUB_URL") is None
True
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from moksha.config.keys import KEY_ALIASES, KEYS

__all__ = ["ENVIRONMENT", "Misspelling", "edit_distance", "likely_key", "likely_variable"]

_MAX_EDITS = 2
_MIN_LENGTH = 6  # shorter names are two edits away from too many words
_LAST_PART_SIMILARITY = 0.7  # difflib ratio of the last dotted parts

ENVIRONMENT = "the environment"
"""The source of a misspelt ``MOKSHA_*`` variable (it sets no key, so it has none of its own)."""


def edit_distance(a: str, b: str) -> int:
    """Edits (insert, delete, replace, swap two neighbours) turning ``a`` into ``b``."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            cost = min(
                previous[j] + 1,
                current[j - 1] + 1,
                previous[j - 1] + (char_a != char_b),
            )
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                cost = min(cost, previous2[j - 2] + 1)
            current.append(cost)
        previous2, previous = previous, current
    return previous[-1]


def _known() -> Iterable[tuple[str, str]]:
    """(spelling, key it means) for every declared key and old spelling."""
    for key in KEYS:
        yield key.name, key.name
    yield from KEY_ALIASES.items()


def likely_key(name: str) -> str | None:
    """The known key ``name`` was probably meant to be, or None when it looks like no key.

    Args:
        name: a key Moksha does not know.

    Returns:
        The declared key's name, or None.
    """
    if len(name) >= _MIN_LENGTH:
        distance, meant = min((edit_distance(name, spelling), key) for spelling, key in _known())
        if distance <= _MAX_EDITS:
            return meant
    prefix, dot, last = name.rpartition(".")
    if not dot:
        return None
    siblings = {
        spelling.rpartition(".")[2]: key
        for spelling, key in _known()
        if spelling.rpartition(".")[0] == prefix
    }
    close = difflib.get_close_matches(last, siblings, n=1, cutoff=_LAST_PART_SIMILARITY)
    return siblings[close[0]] if close else None


def likely_variable(variable: str) -> str | None:
    """The ``MOKSHA_*`` variable of a known key that ``variable`` probably misspells.

    Args:
        variable: an environment variable that sets no known key.

    Returns:
        The known key's variable, or None.
    """
    if not variable.startswith("MOKSHA_"):
        return None
    distance, meant = min((edit_distance(variable, key.env_var), key.env_var) for key in KEYS)
    return meant if distance <= _MAX_EDITS else None


@dataclass(frozen=True, slots=True)
class Misspelling:
    """An unknown key that looks like a known one (see the module docstring).

    Attributes:
        key: the key as written.
        source: where it was set (a file path, ``code``).
        meant: the known key it probably should be.
    """

    key: str
    source: str
    meant: str

    def __str__(self) -> str:
        if self.source == ENVIRONMENT:
            return (
                f"unknown environment variable {self.key}: did you mean {self.meant}? "
                "Moksha ignores it; rename it"
            )
        return (
            f"unknown key {self.key!r} in {self.source}: did you mean {self.meant!r}? "
            "Moksha ignores it (it is kept for plugins); rename it if it is Moksha's"
        )
