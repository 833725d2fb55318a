"""``moksha feeds``: manage the feeds the hub's feed stream polls.

``moksha feeds add URL`` fetches the URL once and adds it to the feeds file
(``feed.file``, ``feeds.txt`` by default) only when it is an RSS or Atom
feed; for an HTML page it says so, with the feeds the page links to.
``moksha feeds list`` shows every feed the stream would poll (configuration,
feeds file, widgets) and its topic; ``moksha feeds remove URL`` takes one out
of the file.  A running hub reads the file again at its next poll.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from moksha.cli._common import (
    CliState,
    common_options,
    pass_state,
    run_async,
    stderr_console,
    stdout_console,
)
from moksha.feeds.errors import FeedError, NotAFeed
from moksha.feeds.naming import feed_topic
from moksha.feeds.settings import FeedSettings

# The commands import the rest of moksha.feeds (httpx, SQLAlchemy, feedparser) when they
# run, so other `moksha` commands start without it.

__all__ = ["feeds_command"]

_file_option = click.option(
    "--file",
    "feeds_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="The feeds file (default: feed.file of the configuration, else ./feeds.txt).",
)


@click.group("feeds")
@common_options
def feeds_command() -> None:
    """Manage the RSS and Atom feeds the hub publishes on moksha.feeds.* topics.

    The hub's feed stream polls them when moksha.feedaggregator = true.
    """


@feeds_command.command("add")
@click.argument("url")
@_file_option
@click.option("--no-check", is_flag=True, help="Add the URL without fetching it first.")
@common_options
@pass_state
@click.pass_context
def add_command(
    ctx: click.Context, state: CliState, url: str, feeds_file: Path | None, no_check: bool
) -> int:
    """Fetch URL, check that it is an RSS or Atom feed, and add it to the feeds file."""
    from moksha.feeds.feed import fetch_feed
    from moksha.feeds.fetch import check_url
    from moksha.feeds.sources import add_to_feeds_file

    state.start_logging(ctx)
    settings = FeedSettings.from_config(state.load_config())
    path = feeds_file or settings.file
    url = check_url(url)
    described = ""
    if not no_check:
        try:
            parsed = run_async(
                fetch_feed(url, timeout=settings.timeout, max_bytes=settings.max_bytes)
            )
        except NotAFeed as exc:
            hint = " Add the feed's URL instead." if exc.alternates else ""
            raise FeedError(f"{exc}{hint} Nothing was added to {path}.", url=url) from exc
        except FeedError as exc:
            raise FeedError(
                f"{exc} Nothing was added to {path} (--no-check adds it unchecked).", url=url
            ) from exc
        count = len(parsed.entries)
        described = f" ({parsed.title!r}, {count} entr{'y' if count == 1 else 'ies'})"
    if not add_to_feeds_file(path, url):
        click.echo(f"{url} is already in {path}")
        return 0
    click.echo(f"added {url}{described} to {path}; its entries go to {feed_topic(url)}")
    if not settings.enabled:
        _say_stream_is_off()
    return 0


@feeds_command.command("remove")
@click.argument("url")
@_file_option
@common_options
@pass_state
@click.pass_context
def remove_command(ctx: click.Context, state: CliState, url: str, feeds_file: Path | None) -> int:
    """Remove URL from the feeds file."""
    from moksha.feeds.sources import read_feeds_file, remove_from_feeds_file

    state.start_logging(ctx)
    settings = FeedSettings.from_config(state.load_config())
    path = feeds_file or settings.file
    url = url.strip()
    if not remove_from_feeds_file(path, url):
        listed = read_feeds_file(path)
        raise click.ClickException(
            f"{url} is not in {path}"
            + (f"; it lists: {', '.join(listed)}" if listed else " (it lists no feed)")
        )
    click.echo(f"removed {url} from {path}")
    return 0


@feeds_command.command("list")
@_file_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, for scripts.")
@common_options
@pass_state
@click.pass_context
def list_command(
    ctx: click.Context, state: CliState, feeds_file: Path | None, as_json: bool
) -> int:
    """List the feeds the hub polls: from feed.urls, the feeds file and feed widgets."""
    from moksha.feeds.sources import feed_sources

    state.start_logging(ctx)
    config = state.load_config()
    settings = FeedSettings.from_config(config)
    if feeds_file is not None:
        settings = dataclasses.replace(settings, file=feeds_file)
    rows = [
        {"url": source.url, "origin": source.origin, "topic": feed_topic(source.url)}
        for source in feed_sources(settings, config)
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        table = Table("url", "from", "topic")
        for row in rows:
            table.add_row(row["url"], row["origin"], row["topic"])
        stdout_console().print(table)
    else:
        stdout_console().print(
            Text(f"No feeds: add one with `moksha feeds add URL` (to {settings.file}).")
        )
    if not settings.enabled and not as_json:
        _say_stream_is_off()
    return 0


def _say_stream_is_off() -> None:
    stderr_console().print(
        "Note: the hub polls no feed until its configuration says moksha.feedaggregator = true.",
        style="yellow",
        markup=False,
    )
