"""Running a polling producer: ``poll()`` every ``frequency``, on a fixed schedule.

The central hub starts one task per :class:`~moksha.hub.api.PollingProducer`
running :func:`run_polling_producer` (in a cluster, only while its node leads
the producer); ``producer.stop()`` ends it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time

from moksha.hub.api.producer import PollingProducer

__all__ = ["run_polling_producer"]

log = logging.getLogger("moksha.hub")


async def run_polling_producer(producer: PollingProducer) -> None:
    """Call ``producer.poll()`` every ``producer.frequency`` until cancelled or stopped.

    Ticks are kept on a fixed schedule; a poll that overruns its interval
    delays the next one rather than making polls pile up.  A plain ``poll``
    runs in a worker thread.  Exceptions are logged and counted.
    """
    loop = asyncio.get_running_loop()
    is_async = inspect.iscoroutinefunction(producer.poll)
    interval = producer.interval
    name = type(producer).__name__

    async def poll_once() -> None:
        producer._last_ran = time.time()
        try:
            if is_async:
                await producer.poll()
            else:
                await asyncio.to_thread(producer.poll)
        except Exception:
            producer._exception_count += 1
            log.exception("%s.poll failed", name)
        else:
            producer._exception_count = 0

    if producer.now and not producer.die:
        await poll_once()
    next_at = loop.time()
    while not producer.die:
        next_at += interval
        delay = next_at - loop.time()
        if delay < 0:
            next_at = loop.time()
            delay = 0
        await asyncio.sleep(delay)
        if not producer.die:
            await poll_once()
