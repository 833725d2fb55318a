"""Health checks for load balancers, orchestrators and service managers.

``GET /live`` answers 200 whenever the process serves HTTP: restart the hub
when it stops answering.  ``GET /ready`` answers 200 when the hub is running,
every backend is connected and every consumer has started, else 503 with the
reasons, so a balancer sends no traffic to a hub that cannot deliver it::

    HTTP/1.1 503 Service Unavailable
    {"ready": false, "reasons": ["backend amqp is not connected"],
     "state": "running", "backends": {"amqp": false}, "consumers": 2}

Consumers start before either web server does (``moksha start`` serves once
the hub started; ``moksha hub`` opens its live-socket port last), so a hub
answering HTTP has started every consumer that could start; one whose
constructor raised is logged and left out.

From the moment a node begins to stop (SIGTERM: its live socket drains its
clients to other nodes), ``/ready`` answers 503 on the connections still open.

A consumer whose broker queue holds more than ``moksha.queue_depth_limit``
messages does not make the hub unready (it still consumes; sending traffic
elsewhere would not help) but ``/ready`` says so: ``"status": "degraded"``
with a sentence per queue in ``warnings``, still with a 200.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moksha.hub.core import HubState

if TYPE_CHECKING:
    from moksha.hub.hub import MokshaHub

__all__ = ["Readiness", "readiness"]


@dataclass(frozen=True)
class Readiness:
    """Whether a hub is ready, and why not.

    Attributes:
        ready: running, every backend connected, every consumer started.
        reasons: one sentence per problem (empty when ready).
        state: the hub's state (``running``, ``stopping``, ...).
        backends: each backend's name and whether it is connected.
        consumers: how many consumers run.
        warnings: one sentence per consumer whose broker queue is past the limit
            (and one when the cluster's store cannot be reached).
        cluster: in a cluster, this node's id, the nodes alive and the leaders.
    """

    ready: bool
    reasons: list[str] = field(default_factory=list)
    state: str = HubState.RUNNING.value
    backends: dict[str, bool] = field(default_factory=dict)
    consumers: int = 0
    warnings: list[str] = field(default_factory=list)
    cluster: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        """``ready``, ``degraded`` (ready, with warnings) or ``not ready``."""
        if not self.ready:
            return "not ready"
        return "degraded" if self.warnings else "ready"

    def as_json(self) -> dict[str, Any]:
        """The body of ``/ready``."""
        return {
            "ready": self.ready,
            "status": self.status,
            "reasons": self.reasons,
            "warnings": self.warnings,
            "state": self.state,
            "backends": self.backends,
            "consumers": self.consumers,
            **({"cluster": self.cluster} if self.cluster is not None else {}),
        }


def readiness(hub: MokshaHub, *, draining: bool = False) -> Readiness:
    """Check ``hub``: running, backends connected, consumers started and readable.

    A consumer whose statistics cannot be read (its ``stats`` raises) is named
    in the reasons; the others are still checked.

    Args:
        hub: the hub; a :class:`~moksha.hub.CentralMokshaHub` also has its consumers checked.
        draining: its live socket is draining (the node is stopping): not ready.

    Returns:
        The verdict, with a sentence per problem.
    """
    reasons = []
    if draining:
        reasons.append("this node is stopping: its live-socket clients are moving to other nodes")
    if hub.state is not HubState.RUNNING:
        reasons.append(f"the hub is {hub.state.value}")
    backends: dict[str, bool] = {}
    for backend in hub.backends:
        connected = backend.connected
        backends[backend.name] = backends.get(backend.name, True) and connected
        if not connected:
            reasons.append(f"backend {backend.name} is not connected")
    consumers = list(getattr(hub, "consumers", ()))
    warnings = []
    limit = hub.config.queue_depth_limit
    for consumer in consumers:
        name = type(consumer).__name__
        try:
            started = consumer.stats().get("initialized", True)
        except Exception as exc:
            # A consumer that broke its own statistics must not break the verdict.
            reasons.append(f"consumer {name} cannot report its statistics ({exc!r})")
            continue
        if not started:
            reasons.append(f"consumer {name} has not started")
        depth = consumer.queue_depth
        if limit and depth is not None and depth > limit:
            warnings.append(
                f"consumer {name} has {depth} messages waiting in its "
                f"broker queue (moksha.queue_depth_limit is {limit})"
            )
    cluster = getattr(hub, "cluster", None)
    view = None
    if cluster is not None:
        # The node still delivers without its store; only recovery and leadership suffer.
        if not cluster.store_reachable:
            warnings.append("the cluster's store cannot be reached (moksha.cluster.url)")
        view = {
            "node": cluster.node_id,
            "store_reachable": cluster.store_reachable,
            "nodes": sorted(cluster.nodes),
            "leaders": cluster.leaders,
        }
    return Readiness(
        not reasons,
        reasons,
        hub.state.value,
        backends,
        len(consumers),
        warnings=warnings,
        cluster=view,
    )
