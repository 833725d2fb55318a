"""The cluster as a hub attachment (entry point ``moksha.hub.attachment: cluster``).

With ``moksha.cluster.url`` set, the hub starts this node's membership before
its producers (they run while this node leads them: :attr:`ClusterAttachment.coordinator`)
and closes it last, after its consumers stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from moksha.cluster import ClusterNode, cluster_from_config
from moksha.config import Config

if TYPE_CHECKING:
    from moksha.hub import CentralMokshaHub

__all__ = ["ClusterAttachment", "hub_cluster"]


class ClusterAttachment:
    """This node's membership of a cluster, attached to its hub.

    Attributes:
        node: the membership (heartbeat, leader locks, the shared store).
        coordinator: the same node: the hub runs polling producers through its ``lead``.
    """

    name = "cluster"
    serves = False

    def __init__(self, node: ClusterNode) -> None:
        self.node = node
        self.coordinator = node

    @classmethod
    def from_config(cls, config: Config) -> ClusterAttachment | None:
        """The attachment ``moksha.cluster.url`` asks for, or None when it is unset.

        Raises:
            ConfigError: the URL names no store Moksha has.
        """
        node = cluster_from_config(config)
        return None if node is None else cls(node)

    async def start(self, hub: CentralMokshaHub) -> None:
        """Open the store and begin the heartbeat."""
        await self.node.start()

    async def aclose(self) -> None:
        """Leave the cluster: locks released, heartbeat stopped, store closed."""
        await self.node.aclose()


def hub_cluster(hub: Any) -> ClusterNode | None:
    """The cluster node attached to ``hub``, or None (no cluster, or not started)."""
    node = getattr(hub, "cluster", None)
    return node if isinstance(node, ClusterNode) else None
