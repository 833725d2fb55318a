"""Feed post-processors installed through entry points, as a package would declare them."""

from __future__ import annotations

from typing import Any


class DropDrafts:
    """A class entry: instantiated once, called per entry; None drops the entry."""

    def __call__(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        return None if entry["title"].lower().startswith("draft") else entry


def shout(entry: dict[str, Any]) -> dict[str, Any]:
    entry["title"] = entry["title"].upper()
    return entry


async def tag(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "tags": ["news"]}
