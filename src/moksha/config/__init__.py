"""Moksha's configuration: read once, typed, frozen.

Values come from four sources; each one overrides the one before it:

1. built-in defaults (the ``default`` of each entry in :data:`KEYS`);
2. one INI file, section ``[app:main]`` (or ``[moksha]``) with ``[DEFAULT]``
   as fallback, Paste style, so ``%(here)s`` and ``%(__file__)s`` work;
3. environment variables: each known key has one, ``MOKSHA_`` + the key with
   ``moksha.`` dropped, dots as underscores, upper-cased
   (``moksha.workers_per_consumer`` -> ``MOKSHA_WORKERS_PER_CONSUMER``);
4. a mapping passed in code, e.g. ``CentralMokshaHub({"zmq_enabled": True})``.

The result is a :class:`Config`: one typed attribute per known key, and also a
read-only mapping keyed by the original key names, because plugins written for
the original Moksha call ``hub.config.get("some.key", default)``.  Keys Moksha
does not know are kept as raw values for the plugins that read them.  A bad
value raises :class:`~moksha.errors.ConfigError` naming the key and where it
came from: the file path, ``environment MOKSHA_X`` or ``code``.
"""

from moksha.config.keys import KEYS, Key, reference_table
from moksha.config.loader import Config, load_config
from moksha.config.sources import find_config_file

__all__ = ["KEYS", "Config", "Key", "find_config_file", "load_config", "reference_table"]
