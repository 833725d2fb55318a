"""The ``moksha`` command line: a thin layer of commands over the library.

=====================  =================================================
``moksha start``       hub, live socket and dashboard in one process, on one port
``moksha hub``         run the installed consumers and producers (also ``moksha-hub``)
``moksha list``        the installed plugins, their topics and distributions
``moksha send``        publish one message through a running hub or the configured backends
``moksha tail``        print what a running hub routes, one line per message
``moksha config``      the configuration in effect and where each value came from
``moksha monitor``     a live terminal view of a hub's consumers, producers and backends
``moksha feeds``       add, list and remove the feeds the feed stream polls
``moksha quickstart``  a new plugin package: pyproject, entry points, components, README, tests
=====================  =================================================

Each command lives in its own module and is a small function over the library
API; :func:`main` runs them in-process (``main(["list", "--json"])``) and
returns the exit code instead of exiting.
"""

from __future__ import annotations

from moksha.cli.main import cli, hub_main, main

__all__ = ["cli", "hub_main", "main"]
