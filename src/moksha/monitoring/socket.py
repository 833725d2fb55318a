"""The original Moksha's monitoring socket: consumer and producer statistics over ZeroMQ.

When ``moksha.monitoring.socket`` names an endpoint (``ipc:///run/moksha/monitor.sock``
or ``tcp://127.0.0.1:9999``), the hub binds a ZeroMQ PUB socket there and, every
``moksha.monitoring.interval`` seconds (10 by default), publishes one frame of
UTF-8 JSON, as the original's ``MonitoringProducer`` did::

    {"consumers": [<consumer.__json__()>, ...], "producers": [<producer.__json__()>, ...]}

Each consumer entry has ``name``, ``module``, ``topic``, ``initialized``,
``exceptions``, ``jsonify``, ``backlog``, ``headcount_in``, ``headcount_out``
and ``times`` (processing times in seconds).  As in the original, building it
calls ``__json__()``, which resets the consumer's counters: the numbers are
those of the last interval, and while the socket is on, the hub status page
(``/_moksha/hub/status``) counts from the last publication too.  Prometheus
metrics (``/metrics``) still count from the start.

``moksha.monitoring.socket.mode`` (octal, e.g. ``770``) sets the permissions of
an ``ipc://`` socket's file, so a monitoring service of another user can
connect.  Read it with any ZeroMQ SUB socket::

    sub = zmq.Context().socket(zmq.SUB)
    sub.connect("ipc:///run/moksha/monitor.sock")
    sub.subscribe(b"")
    print(json.loads(sub.recv()))
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import zmq

from moksha.errors import ConfigError

if TYPE_CHECKING:
    from moksha.config import Config

__all__ = ["MONITORING_INTERVAL_KEY", "MonitoringSocket"]

log = logging.getLogger("moksha.monitoring")

SOCKET_KEY = "moksha.monitoring.socket"
MODE_KEY = "moksha.monitoring.socket.mode"
MONITORING_INTERVAL_KEY = "moksha.monitoring.interval"
DEFAULT_INTERVAL_S = 10.0
_IPC = "ipc://"


class MonitoringSocket:
    """A bound ZeroMQ PUB socket that publishes statistics as JSON.

    Args:
        endpoint: where to bind (``ipc://PATH``, ``tcp://HOST:PORT``; ``tcp://127.0.0.1:*``
            picks a free port).
        mode: permissions for an ``ipc://`` socket's file (e.g. ``0o770``).
        source: where the endpoint came from, for error messages.

    Attributes:
        endpoint: the endpoint bound, with a picked port resolved; set by :meth:`bind`.
    """

    def __init__(self, endpoint: str, mode: int | None = None, *, source: str | None = None):
        self.endpoint = endpoint
        self.mode = mode
        self._source = source
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._socket: zmq.Socket[bytes] | None = None

    @classmethod
    def from_config(cls, config: Config) -> MonitoringSocket | None:
        """The socket ``moksha.monitoring.socket`` asks for (not bound yet), or None.

        Raises:
            ConfigError: ``moksha.monitoring.socket.mode`` is not an octal mode.
        """
        endpoint = config.monitoring_socket
        if endpoint is None:
            return None
        mode = None
        if config.monitoring_socket_mode is not None:
            try:
                mode = int(config.monitoring_socket_mode, 8)
            except ValueError:
                mode = -1
            if not 0 <= mode <= 0o7777:
                raise ConfigError(
                    f"{config.monitoring_socket_mode!r} is not a file mode; write octal "
                    "digits, e.g. 770",
                    key=MODE_KEY,
                    source=config.source(MODE_KEY),
                )
        return cls(endpoint, mode, source=config.source(SOCKET_KEY))

    def bind(self) -> None:
        """Bind the socket (and set the ipc file's mode).

        Raises:
            ConfigError: the endpoint cannot be bound (malformed, in use, no such directory).
        """
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sock = context.socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, 0)  # statistics are not worth waiting for at exit
        try:
            sock.bind(self.endpoint)
            endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
            if self.mode is not None and endpoint.startswith(_IPC):
                path = endpoint.removeprefix(_IPC)
                if not path.startswith("@"):  # Linux abstract sockets have no file
                    os.chmod(path, self.mode)
        except (zmq.ZMQError, OSError) as exc:
            sock.close()
            context.term()
            raise ConfigError(
                f"cannot bind the monitoring socket to {self.endpoint} ({exc}); use e.g. "
                "ipc:///run/moksha/monitor.sock or tcp://127.0.0.1:9999, in a directory "
                "that exists, on a port nothing else uses",
                key=SOCKET_KEY,
                source=self._source,
            ) from exc
        self._context, self._socket, self.endpoint = context, sock, endpoint
        log.info("monitoring socket bound to %s", endpoint)

    def send(self, data: Mapping[str, Any]) -> None:
        """Publish ``data`` as one JSON frame (values JSON cannot hold become strings).

        A PUB socket never blocks: with no subscriber, or a slow one, ZeroMQ drops it.
        """
        if self._socket is None:
            raise RuntimeError("bind the monitoring socket before sending")
        text = json.dumps(data, default=str, ensure_ascii=False)
        self._socket.send_string(text, zmq.NOBLOCK)

    def close(self) -> None:
        """Close the socket; closing twice is harmless."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._context is not None:
            self._context.term()
            self._context = None

    def __enter__(self) -> Self:
        self.bind()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
