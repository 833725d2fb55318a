"""Watching a running hub: Prometheus metrics, health checks, the monitoring socket.

* :class:`Monitor` watches one hub; whoever runs the hub creates it
  (``moksha hub`` and ``moksha start`` do);
* :func:`monitoring_routes` / :class:`MonitoringApp` serve its ``/metrics``
  (:mod:`.metrics`), ``/live`` and ``/ready`` (:mod:`.health`);
* :class:`MonitoringSocket` is the original Moksha's ZeroMQ PUB socket
  (``moksha.monitoring.socket``), published on by the monitor (:mod:`.socket`);
* :mod:`.tally` keeps totals since the start from statistics plugins reset;
* :mod:`.view` is what ``moksha monitor`` shows.

Nothing here touches the message path: each number is read from the
consumers, producers, backends and live socket when it is needed.
"""

from moksha.monitoring.health import Readiness, readiness
from moksha.monitoring.metrics import HubCollector, hub_registry
from moksha.monitoring.monitor import (
    LIVE_PATH,
    METRICS_PATH,
    READY_PATH,
    Monitor,
    MonitoringApp,
    monitoring_routes,
)
from moksha.monitoring.socket import MonitoringSocket
from moksha.monitoring.tally import HubTally

__all__ = [
    "LIVE_PATH",
    "METRICS_PATH",
    "READY_PATH",
    "HubCollector",
    "HubTally",
    "Monitor",
    "MonitoringApp",
    "MonitoringSocket",
    "Readiness",
    "hub_registry",
    "monitoring_routes",
    "readiness",
]
