"""axe-core, the accessibility checker, fetched from the npm registry when a test needs it.

Never vendored: the session's first axe test runs ``npm pack axe-core@AXE_VERSION`` into
a temporary folder and takes ``axe.min.js`` out of the package.  Without npm or the
registry the tests skip, except in CI (``CI=true``), where they fail saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

AXE_VERSION = "4.14"
# What must not be found on any page.
BLOCKING = ("serious", "critical")


def _cannot(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must run the accessibility tests")
    pytest.skip(message)


@pytest.fixture(scope="session")
def axe_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The path of ``axe.min.js`` from the npm registry's axe-core package."""
    npm = shutil.which("npm")
    if npm is None:
        _cannot("npm is missing (apt-get install npm): it fetches axe-core")
    folder = tmp_path_factory.mktemp("axe-core")
    try:
        packed = subprocess.run(
            [str(npm), "pack", f"axe-core@{AXE_VERSION}", "--silent"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    except subprocess.TimeoutExpired:
        _cannot(f"npm pack axe-core@{AXE_VERSION} did not finish within 180 s")
    if packed.returncode != 0 or not packed.stdout.strip():
        _cannot(
            f"npm pack axe-core@{AXE_VERSION} failed (exit {packed.returncode}): "
            f"{packed.stderr.strip()[-500:]}"
        )
    tarball = folder / packed.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/axe.min.js")
        if member is None:
            _cannot(f"{tarball.name} holds no package/axe.min.js")
        script = folder / "axe.min.js"
        script.write_bytes(member.read())  # type: ignore[union-attr]
    return script


def blocking_violations(page: Page, axe: Path) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.add_script_tag(path=str(axe))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const result = await axe.run(document, { resultTypes: ["violations"] });
            return result.violations.map((v) => ({
                id: v.id, impact: v.impact,
                nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + ": " + n.failureSummary),
            }));
        }"""
    )
    return [v for v in found if v["impact"] in BLOCKING]
