"""Turning a project name and a choice of components into the files of a plugin package.

The files are Jinja2 templates shipped in ``templates/`` beside this module;
:data:`_FILES` says which template becomes which file and for which components.
Rendering is pure (:func:`render_files` returns text by path); :func:`generate`
is the one function that touches the disk.
"""

from __future__ import annotations

import keyword
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jinja2

from moksha import __version__
from moksha.errors import MokshaError

__all__ = [
    "COMPONENTS",
    "Project",
    "QuickstartError",
    "check_topic",
    "generate",
    "package_name",
    "render_files",
]

COMPONENTS = ("consumer", "producer", "livewidget", "app")
"""What a project may hold, in the order they are listed."""

# A distribution name (PEP 508) that is also, after "-" -> "_", an ASCII Python identifier.
_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9_-]*[A-Za-z0-9])?")
# Dotted words without wildcards: the producer sends to it, so it must be a topic, not a pattern.
# The word characters are kept to those safe inside Python and TOML strings unquoted.
_TOPIC = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("moksha.quickstart", "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    # Block tags ({% if %}) take their whole line, so they leave no blank lines behind.
    trim_blocks=True,
    lstrip_blocks=True,
    # The output is Python, TOML and Markdown, never HTML to escape.
    autoescape=False,
)

# (template, file it becomes, the components that need it: empty means always).
# "{package}" in a path is the project's package name.
_FILES: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("pyproject.toml.jinja", "pyproject.toml", frozenset()),
    ("README.md.jinja", "README.md", frozenset()),
    ("gitignore.jinja", ".gitignore", frozenset()),
    ("package/__init__.py.jinja", "src/{package}/__init__.py", frozenset()),
    ("package/schemas.py.jinja", "src/{package}/schemas.py", frozenset({"consumer", "producer"})),
    ("package/consumer.py.jinja", "src/{package}/consumer.py", frozenset({"consumer"})),
    ("package/producer.py.jinja", "src/{package}/producer.py", frozenset({"producer"})),
    ("package/widget.py.jinja", "src/{package}/widget.py", frozenset({"livewidget"})),
    ("package/app.py.jinja", "src/{package}/app.py", frozenset({"app"})),
    ("tests/test_project.py.jinja", "tests/test_{package}.py", frozenset()),
)


class QuickstartError(MokshaError, ValueError):
    """A project cannot be generated: a bad name or topic, or a directory in the way."""


@dataclass(frozen=True, slots=True)
class Project:
    """What to generate.

    Attributes:
        name: the distribution name, as given (``weather-alerts``).
        package: the Python package (``weather_alerts``).
        topic: the topic the components share (``weather_alerts.events``).
        components: some of :data:`COMPONENTS`.
    """

    name: str
    package: str
    topic: str
    components: frozenset[str]

    @classmethod
    def create(cls, name: str, components: Iterable[str] = (), topic: str | None = None) -> Project:
        """Check ``name`` and ``topic`` and build the project.

        Args:
            name: the project's name; ``-`` becomes ``_`` in the package name.
            components: some of :data:`COMPONENTS`; none means all of them.
            topic: the topic to use; default ``<package>.events``.

        Returns:
            The project.

        Raises:
            QuickstartError: the name, a component or the topic is not usable.
        """
        package = package_name(name)
        chosen = frozenset(components) or frozenset(COMPONENTS)
        unknown = sorted(chosen - set(COMPONENTS))
        if unknown:
            raise QuickstartError(
                f"unknown component {', '.join(unknown)}: choose from {', '.join(COMPONENTS)}"
            )
        return cls(name, package, check_topic(topic or f"{package}.events"), chosen)

    @property
    def class_prefix(self) -> str:
        """The package in CamelCase, the start of every class name (``WeatherAlerts``)."""
        return "".join(word[:1].upper() + word[1:] for word in self.package.split("_") if word)


def package_name(name: str) -> str:
    """The Python package a project called ``name`` gets.

    Args:
        name: letters, digits, ``-`` and ``_``, starting with a letter.

    Returns:
        ``name`` with ``-`` replaced by ``_``.

    Raises:
        QuickstartError: ``name`` cannot name a package, or would hide another module.
    """
    package = name.replace("-", "_")
    if not _NAME.fullmatch(name) or keyword.iskeyword(package):
        raise QuickstartError(
            f"{name!r} cannot name a Python package: use letters, digits, '-' and '_', "
            "starting with a letter and ending with a letter or digit, e.g. weather-alerts"
        )
    if package in sys.stdlib_module_names or package == "moksha":
        raise QuickstartError(
            f"{name!r} would hide the module {package!r} that Python or Moksha needs: "
            "choose another name"
        )
    return package


def check_topic(topic: str) -> str:
    """``topic`` if the components can share it.

    Raises:
        QuickstartError: it is empty, has wildcards or characters other than
            letters, digits, ``-`` and ``_`` in its dotted words.
    """
    if not _TOPIC.fullmatch(topic):
        raise QuickstartError(
            f"{topic!r} is not a usable topic: write dotted words of letters, digits, '-' "
            "and '_', without wildcards, e.g. org.example.events"
        )
    return topic


def render_files(project: Project) -> dict[str, str]:
    """The project's files, rendered.

    Args:
        project: what to generate.

    Returns:
        File contents by path relative to the project directory (``/``-separated).
    """
    context = {
        "name": project.name,
        "package": project.package,
        "topic": project.topic,
        "summary_topic": f"{project.topic}.summary",
        "prefix": project.class_prefix,
        "moksha_version": __version__,
        **{component: component in project.components for component in COMPONENTS},
    }
    files = {}
    for template, path, needs in _FILES:
        if needs and not needs & project.components:
            continue
        files[path.format(package=project.package)] = _ENVIRONMENT.get_template(template).render(
            context
        )
    return files


def generate(project: Project, directory: Path, *, force: bool = False) -> list[Path]:
    """Write the project's files into ``directory``, creating it if needed.

    Args:
        project: what to generate.
        directory: the project's root directory.
        force: write even if ``directory`` holds files (those generated are
            overwritten, others left alone).

    Returns:
        The files written, in the order of :func:`render_files`.

    Raises:
        QuickstartError: ``directory`` is a file, or is not empty and ``force`` is off.
    """
    if directory.exists() and not directory.is_dir():
        raise QuickstartError(f"{directory} is a file: give another NAME or --dir")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise QuickstartError(
            f"{directory} already exists and is not empty: give another NAME or --dir, "
            "or --force to overwrite the generated files in it"
        )
    written = []
    for relative, text in render_files(project).items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
