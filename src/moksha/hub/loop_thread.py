"""An event loop in a background thread: what the sync API of the hub runs on.

The hub has one implementation, on asyncio.  Sync callers (``hub =
CentralMokshaHub(config)``, ``hub.send_message(...)``) get a
:class:`LoopThread` that runs the same coroutines on a private loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["LoopThread", "new_event_loop"]

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when it is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()  # type: ignore[no-any-return, unused-ignore]


class LoopThread:
    """Runs an event loop in a daemon thread until :meth:`stop`."""

    def __init__(self, name: str = "moksha-hub") -> None:
        self.loop = new_event_loop()
        # Our own executor, so stopping need not wait for a plugin call that hangs.
        self._executor = ThreadPoolExecutor(thread_name_prefix=f"{name}-worker")
        self.loop.set_default_executor(self._executor)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            try:
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                self._executor.shutdown(wait=False, cancel_futures=True)
            finally:
                self.loop.close()

    @property
    def is_current(self) -> bool:
        """Whether the caller runs on this loop's thread."""
        return threading.current_thread() is self._thread

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and wait (at most ``timeout`` seconds) for the thread to end."""
        if self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:  # closed in between
            return
        if not self.is_current:
            self._thread.join(timeout)
