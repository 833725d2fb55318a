"""The official AsyncAPI 3.0 JSON Schema, fetched from its registry package at set-up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from typing import Any

import pytest

SPECS_PACKAGE = "@asyncapi/specs@6"
"""npm's package of the AsyncAPI schemas, published by the AsyncAPI Initiative."""


@pytest.fixture(scope="session")
def asyncapi_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``schemas/3.0.0-without-$id.json`` of @asyncapi/specs (``npm pack``; not in the repo).

    Skipped without npm or the registry, except in CI (``CI=true``), where it must run.
    """
    folder = tmp_path_factory.mktemp("asyncapi-specs")
    npm = shutil.which("npm")
    problem = None
    if npm is None:
        problem = "npm is not installed"
    else:
        packed = subprocess.run(
            [npm, "pack", SPECS_PACKAGE, "--silent", "--pack-destination", str(folder)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if packed.returncode != 0:
            problem = f"npm pack {SPECS_PACKAGE} failed: {packed.stderr.strip()[-500:]}"
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{problem}; CI must validate the AsyncAPI document")
        pytest.skip(problem)
    [tarball] = folder.glob("*.tgz")
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/schemas/3.0.0-without-$id.json")
        assert member is not None
        schema: dict[str, Any] = json.load(member)
    return schema
