"""The AMQP backend's connection keeping: a close that cancels its supervisor is never lost.

aiormq and aio-pika await their RPCs through ``asyncio.wait_for``, which on
Python 3.11 returns the result instead of raising when its task is cancelled
in the loop turn the result arrives (CPython gh-86296).  The backend's
supervisor then went back to waiting for a reconnection, and ``close()``,
which waits for it, hung (rarely: one turn in thousands).
"""

from __future__ import annotations

import asyncio

import pytest
from amqp_support import backend_for

from moksha.hub.backends.amqp_connection import honour_cancellation
from support import TIMEOUT


async def test_a_cancellation_that_wait_for_swallowed_is_raised_again() -> None:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[str] = loop.create_future()
    returned: list[str] = []

    async def supervisor() -> None:
        # As aiormq awaits an RPC: its reply and close()'s cancel land in one turn.
        returned.append(await asyncio.wait_for(reply, TIMEOUT))
        honour_cancellation()
        await asyncio.sleep(TIMEOUT)  # as if waiting for the next reconnection

    task = asyncio.create_task(supervisor())
    await asyncio.sleep(0)
    reply.set_result("declare-ok")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(TIMEOUT / 2):
            await task
    assert task.cancelled()


async def test_nothing_is_raised_without_a_cancellation() -> None:
    honour_cancellation()  # a plain task, nothing asked: it goes on


async def test_closing_while_setting_up_returns_every_time(rabbit, prefix) -> None:
    # Close at many points of the set-up (connect, channel, exchange, queues).
    for attempt in range(20):
        backend = backend_for()
        connecting = asyncio.create_task(backend.connect())
        await backend.subscribe([f"{prefix}.{attempt}"], lambda message: None)
        for _ in range(attempt):
            await asyncio.sleep(0)
        async with asyncio.timeout(TIMEOUT):
            await backend.close()
            await asyncio.gather(connecting, return_exceptions=True)
