"""Message schemas: classes that say what a topic's messages look like and mean.

* :class:`Message`: the base class of a schema (fedora-messaging's shape);
* :func:`installed_schemas`: those on the ``moksha.schema`` and
  ``fedora.messages`` entry points, as a :class:`SchemaRegistry`;
* :class:`SchemaCheck`: where the hub checks them (``moksha.schema.mode``);
* :class:`SchemaMessage`: what a consumer receives for a message with a schema.
"""

from moksha.errors import ValidationError
from moksha.schema.checks import MODES, SchemaCheck, SchemaMessage, schema_files
from moksha.schema.message import DEBUG, ERROR, INFO, SEVERITIES, WARNING, Message
from moksha.schema.registry import (
    SCHEMA_GROUPS,
    SCHEMA_HEADER,
    Schema,
    SchemaRegistry,
    installed_schemas,
    schema_class_problem,
    schema_from_file,
)

__all__ = [
    "DEBUG",
    "ERROR",
    "INFO",
    "MODES",
    "SCHEMA_GROUPS",
    "SCHEMA_HEADER",
    "SEVERITIES",
    "WARNING",
    "Message",
    "Schema",
    "SchemaCheck",
    "SchemaMessage",
    "SchemaRegistry",
    "ValidationError",
    "installed_schemas",
    "schema_class_problem",
    "schema_files",
    "schema_from_file",
]
