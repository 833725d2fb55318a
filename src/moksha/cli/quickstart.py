"""``moksha quickstart``: a new plugin package, ready to install, run and test.

The original's ``paster moksha -u -P -l -C -t TOPIC NAME``; the short options
are kept (``-C``, the original's controller, is now a web app).  The files come
from :mod:`moksha.quickstart`.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from moksha.cli._common import common_options
from moksha.quickstart import (
    COMPONENTS,
    Project,
    QuickstartError,
    check_topic,
    generate,
    package_name,
)

__all__ = ["quickstart_command"]


def _check_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        package_name(value)
    except QuickstartError as exc:
        raise click.BadParameter(str(exc)) from exc
    return value


def _check_topic(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    try:
        return None if value is None else check_topic(value)
    except QuickstartError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command("quickstart")
@click.argument("name", callback=_check_name)
@click.option("-u", "--consumer", is_flag=True, help="A consumer counting the topic's messages.")
@click.option("-P", "--producer", is_flag=True, help="A producer sending to the topic.")
@click.option("-l", "--livewidget", is_flag=True, help="A live widget showing the topic.")
@click.option("-C", "--app", is_flag=True, help="A web app showing the topic live.")
@click.option(
    "-t",
    "--topic",
    metavar="TOPIC",
    callback=_check_topic,
    help="The components' topic [default: NAME.events, with '-' as '_'].",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to create the project [default: ./NAME].",
)
@click.option("--force", is_flag=True, help="Write into a directory that is not empty.")
@common_options
def quickstart_command(
    name: str,
    consumer: bool,
    producer: bool,
    livewidget: bool,
    app: bool,
    topic: str | None,
    directory: Path | None,
    force: bool,
) -> int:
    """Create NAME, a Python package of Moksha plugins sharing one topic.

    Choose components with the flags; none means all four. The package declares
    them on Moksha's entry points, so after `pip install -e NAME` `moksha list`
    shows them and `moksha hub` runs them; its tests use Moksha's pytest plugin.
    """
    flags = {"consumer": consumer, "producer": producer, "livewidget": livewidget, "app": app}
    components = [component for component in COMPONENTS if flags[component]]
    target = directory if directory is not None else Path(name)
    try:
        project = Project.create(name, components, topic)
        written = generate(project, target, force=force)
    except QuickstartError as exc:
        raise click.UsageError(str(exc)) from exc
    chosen = ", ".join(component for component in COMPONENTS if component in project.components)
    click.echo(f"Created {name} in {target}{os.sep} ({chosen}):")
    for path in written:
        click.echo(f"  {path.relative_to(target).as_posix()}")
    click.echo(_next_steps(project, target))
    return 0


def _next_steps(project: Project, target: Path) -> str:
    lines = [
        "",
        f"Topic: {project.topic}. Next:",
        f"  cd {target}",
        "  python -m pip install -e '.[test]'",
        "  moksha list",
        "  python -m pytest",
    ]
    if project.components & {"consumer", "producer"}:
        lines.append("  moksha hub      # runs the installed consumers and producers until Ctrl-C")
    if project.components & {"app", "livewidget"}:
        page = "apps" if "app" in project.components else "widgets"
        suffix = "/" if page == "apps" else ""
        lines.append(
            f"  moksha start    # then open http://127.0.0.1:8080/{page}/{project.package}{suffix}"
        )
    return "\n".join(lines)
