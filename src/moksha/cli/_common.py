"""What every ``moksha`` command shares: options, state, config loading, logging, output.

The global options ``-c/--config`` and ``--debug`` are accepted before the
command name and after it (``moksha -c prod.ini send ...`` and ``moksha send
-c prod.ini ...``); both write into one :class:`CliState` that click hands
down from the group to the command.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from rich.console import Console

from moksha.config import Config, load_config
from moksha.hub.loop_thread import new_event_loop
from moksha.logs import configure_logging

__all__ = [
    "CliState",
    "common_options",
    "pass_state",
    "run_async",
    "stderr_console",
    "stdout_console",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("moksha.config")

# Width for tables written to a pipe or file: rich would otherwise fold them at
# 80 columns, and a table sizes itself to its content anyway.
_PIPE_WIDTH = 1000


@dataclass
class CliState:
    """Global options, gathered from the group and the command.

    Attributes:
        config_path: the INI file named by ``-c`` (or a command's CONFIG argument).
        debug: show tracebacks of errors and log at DEBUG level.
    """

    config_path: str | None = None
    debug: bool = False
    logging_started: bool = False

    def load_config(self, path: str | None = None) -> Config:
        """Read the configuration as every command does.

        Args:
            path: an INI file given to this command; else ``-c``; else the file
                :func:`moksha.config.load_config` finds, if any.

        Returns:
            The configuration.

        Raises:
            ConfigError: the file is missing or a value in it is wrong.
        """
        # Misspelt keys are logged once logging is set up (see start_logging).
        return load_config(path or self.config_path, warn=self.logging_started)

    def start_logging(
        self, ctx: click.Context, level: int = logging.WARNING, config: Config | None = None
    ) -> None:
        """Log to stderr at ``level`` (DEBUG under ``--debug``) until the command ends.

        With ``config``: its format (``moksha.logging.format``), per-logger levels
        (``moksha.logging.levels``) and secrets to mask; and its misspelt keys
        are logged, as :meth:`load_config` did not before logging started.
        """
        ctx.with_resource(configure_logging(config, logging.DEBUG if self.debug else level))
        self.logging_started = True
        if config is not None:
            for misspelling in config.misspellings():
                log.warning("%s", misspelling)


pass_state = click.make_pass_decorator(CliState, ensure=True)


def _set_config_path(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(CliState).config_path = value


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(CliState).debug = True


def common_options(command: F) -> F:
    """Add ``-c/--config`` and ``--debug`` to a command or group."""
    command = click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        callback=_set_debug,
        help="Show tracebacks of errors and log at DEBUG level.",
    )(command)
    return click.option(
        "-c",
        "--config",
        metavar="PATH",
        expose_value=False,
        callback=_set_config_path,
        help="INI file to read (default: ./development.ini, ./production.ini, /etc/moksha/).",
    )(command)


def stdout_console() -> Console:
    """A console for a command's output (tables); wide when not a terminal."""
    width = None if sys.stdout.isatty() else _PIPE_WIDTH
    return Console(width=width, highlight=False)


def stderr_console() -> Console:
    """A console for messages to the user; a long sentence stays one line."""
    return Console(stderr=True, soft_wrap=True, highlight=False)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a new event loop (uvloop's when installed)."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)


def logging_level(verbose: bool, quiet: bool) -> int:
    """The log level ``-v`` / ``-q`` ask for (INFO by default).

    Raises:
        click.UsageError: both were given.
    """
    if verbose and quiet:
        raise click.UsageError("give -v (more logging) or -q (less), not both.")
    return logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
