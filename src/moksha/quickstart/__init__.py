"""Scaffolding for new plugin packages: what ``moksha quickstart`` writes.

::

    from pathlib import Path
    from moksha.quickstart import Project, generate

    project = Project.create("weather-alerts", ["consumer", "producer"])
    generate(project, Path("weather-alerts"))

A project is a Python package (``pyproject.toml`` with hatchling, the ``src``
layout) whose chosen components share one topic and are declared on Moksha's
entry points: a consumer that counts messages and publishes a summary, a
polling producer, a live widget and a small Starlette app showing it, with a
README and tests that use Moksha's pytest plugin.  The templates are plain
Jinja2 files in ``templates/`` (package data).
"""

from __future__ import annotations

from moksha.quickstart.render import (
    COMPONENTS,
    Project,
    QuickstartError,
    check_topic,
    generate,
    package_name,
    render_files,
)

__all__ = [
    "COMPONENTS",
    "Project",
    "QuickstartError",
    "check_topic",
    "generate",
    "package_name",
    "render_files",
]
