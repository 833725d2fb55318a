"""One node of a cluster: its heartbeat, and the singleton work it leads.

:class:`ClusterNode` owns the store connection for its process.  While it
runs it renews its heartbeat every third of the TTL (what it reports comes
from the :attr:`ClusterNode.reporters` its parts register: the live socket
adds its client count), and :meth:`ClusterNode.lead` runs a piece of work only
while this node holds the work's lock: the lock lasts the TTL, is renewed
every third of it, and the work is cancelled as soon as a renewal fails, so
two nodes never run it together for longer than the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from moksha.cluster.store import ClusterError, ClusterStore

__all__ = ["ClusterNode"]

log = logging.getLogger("moksha.cluster")


def new_node_id() -> str:
    """``host-pid-random``: unique per process, readable in a status page."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class ClusterNode:
    """This process as a member of a cluster.

    Args:
        store: the shared store (opened by :meth:`start`, closed by :meth:`aclose`).
        ttl: seconds a heartbeat and a lock last without renewal.
        node_id: this node's name; a fresh one by default.

    Attributes:
        reporters: name → function returning what to report in the heartbeat.
        leading: the locks this node holds now.
    """

    def __init__(self, store: ClusterStore, ttl: float = 4.0, node_id: str | None = None) -> None:
        self.store = store
        self.ttl = ttl
        self.node_id = node_id or new_node_id()
        self.reporters: dict[str, Callable[[], Any]] = {}
        self.leading: set[str] = set()
        self.started = time.time()
        # The nodes alive and the leaders as last read (every heartbeat), for
        # readers that cannot wait for the store (metrics, readiness).
        self.nodes: dict[str, dict[str, Any]] = {}
        self.leaders: dict[str, str] = {}
        self.store_reachable = True
        self._beating: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the store and start the heartbeat.

        Raises:
            ClusterError: the store cannot be reached.
        """
        await self.store.open()
        await self._refresh()
        self._beating = asyncio.create_task(self._beat(), name="moksha cluster heartbeat")
        log.info("cluster node %s joined", self.node_id)

    async def aclose(self) -> None:
        """Stop the heartbeat, leave the cluster and close the store."""
        if self._beating is not None:
            self._beating.cancel()
            await asyncio.gather(self._beating, return_exceptions=True)
        try:
            await self.store.leave(self.node_id)
        except ClusterError as exc:
            log.warning("could not leave the cluster cleanly: %s", exc)
        await self.store.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def report(self) -> dict[str, Any]:
        """What this node says about itself in its heartbeat."""
        info: dict[str, Any] = {"started": self.started, "leading": sorted(self.leading)}
        for name, reporter in self.reporters.items():
            try:
                info[name] = reporter()
            except Exception:
                log.exception("cluster reporter %s failed", name)
        return info

    async def status(self) -> dict[str, Any]:
        """This node, the nodes alive and the leaders, for status pages and metrics."""
        try:
            nodes = await self.store.nodes()
            leaders = await self.store.leaders()
        except ClusterError as exc:
            return {"node": self.node_id, "error": str(exc)}
        return {"node": self.node_id, "nodes": nodes, "leaders": leaders}

    async def _refresh(self) -> None:
        await self.store.heartbeat(self.node_id, self.report(), self.ttl)
        self.nodes = await self.store.nodes()
        self.leaders = await self.store.leaders()

    async def _beat(self) -> None:
        interval = self.ttl / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self._refresh()
            except ClusterError as exc:
                if self.store_reachable:
                    log.warning("cluster heartbeat failed (retrying): %s", exc)
                self.store_reachable = False
            else:
                if not self.store_reachable:
                    log.info("cluster store reachable again")
                self.store_reachable = True

    async def lead(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work()`` on whichever node holds the lock ``name``; return when it ends.

        A node that does not hold the lock tries again every third of the TTL,
        so when the leader dies (its lock expires) another takes over within
        about 1⅓ TTL.  A leader that cannot renew its lock (store unreachable,
        or the lock expired meanwhile) cancels its work and competes again.
        """
        interval = self.ttl / 3
        while True:
            if not await self._try_acquire(name):
                await asyncio.sleep(interval)
                continue
            log.info("node %s leads %s", self.node_id, name)
            self.leading.add(name)
            task = asyncio.ensure_future(work())
            try:
                while True:
                    done, _ = await asyncio.wait({task}, timeout=interval)
                    if done:
                        task.result()
                        return
                    if not await self._try_acquire(name):
                        log.warning("node %s lost the lead of %s; stopping it", self.node_id, name)
                        break
            finally:
                self.leading.discard(name)
                if not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    await self._release(name)

    async def _try_acquire(self, name: str) -> bool:
        try:
            return await self.store.acquire(name, self.node_id, self.ttl)
        except ClusterError as exc:
            log.warning("cannot take the lock %s: %s", name, exc)
            return False

    async def _release(self, name: str) -> None:
        # When it cannot be released, it expires on its own within the TTL.
        with contextlib.suppress(ClusterError, asyncio.CancelledError):
            await asyncio.shield(self.store.release(name, self.node_id))
