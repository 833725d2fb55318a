"""``python -m moksha``: the ``moksha`` command."""

from __future__ import annotations

from moksha.cli import main

raise SystemExit(main())
