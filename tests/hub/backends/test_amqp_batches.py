"""The AMQP consumer takes the waiting deliveries at once, in order, and settles each once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable

import pytest
from amqp_support import backend_for, fill_group_queue, ready_count

from moksha.hub.backends.amqp_subscription import ACK_INTERVAL
from moksha.message import Message
from support import TIMEOUT, Received, until
from tcp_proxy import TcpProxy

# Batches: every delivery waiting is taken at once, handed over in order, settled once.


@pytest.mark.parametrize("raises", ["when called", "when awaited"])
async def test_a_failure_in_a_batch_requeues_that_delivery_alone(
    raw, prefix, durable_queues, raises
):
    total, failing = 50, 20
    group, topic = prefix.replace(".", "-"), f"{prefix}.n"
    name = await fill_group_queue(raw, group, topic, total)
    durable_queues.append(name)
    calls: Counter[int] = Counter()
    handled: list[int] = []
    release = asyncio.Event()

    async def hold(n: int) -> None:
        await release.wait()
        handled.append(n)

    async def fail() -> None:
        raise RuntimeError("not now")

    def handler(message: Message) -> Awaitable[None] | None:
        n = message.body
        calls[n] += 1
        if n == 0 and calls[n] == 1:
            return hold(n)  # until the broker has sent the rest: they wait as one batch
        if n == failing and calls[n] == 1:
            if raises == "when called":
                raise RuntimeError("not now")
            return fail()
        handled.append(n)
        return None

    async with backend_for() as backend:
        await backend.subscribe([topic], handler, group=group)
        async with asyncio.timeout(TIMEOUT):
            while await ready_count(raw, name):  # all 50 delivered, none acked yet
                await asyncio.sleep(0.01)
        release.set()
        await until(lambda: len(handled) >= total)
    # The failed one came back once; no other was redelivered (each was acked once).
    assert calls == {n: 2 if n == failing else 1 for n in range(total)}
    assert sorted(handled) == list(range(total))
    # Nothing was left unacked: closing the connection would have put it back.
    assert await ready_count(raw, name) == 0


@pytest.mark.parametrize("handler_kind", ["plain", "async, some waiting"])
async def test_deliveries_are_handled_in_order_across_batches(
    raw, prefix, durable_queues, handler_kind
):
    total = 500
    group, topic = prefix.replace(".", "-"), f"{prefix}.n"
    name = await fill_group_queue(raw, group, topic, total)
    durable_queues.append(name)
    consumed: list[int] = []

    def plain(message: Message) -> None:
        consumed.append(message.body)

    async def some_waiting(message: Message) -> None:
        # 0, 1 or 2 loop turns: handlers started together would finish out of order.
        for _ in range(message.body % 3):
            await asyncio.sleep(0)
        consumed.append(message.body)

    handler = plain if handler_kind == "plain" else some_waiting
    async with backend_for(amqp_prefetch=50) as backend:  # 10 batches at least
        await backend.subscribe([topic], handler, group=group)
        await until(lambda: len(consumed) >= total)
    assert consumed == list(range(total))


async def test_unsubscribing_mid_batch_acks_what_was_handled(raw, prefix, durable_queues):
    total, stuck = 30, 10
    group, topic = prefix.replace(".", "-"), f"{prefix}.n"
    name = await fill_group_queue(raw, group, topic, total)
    durable_queues.append(name)
    handled: list[int] = []
    reached = asyncio.Event()

    async def handler(message: Message) -> None:
        if message.body == stuck:
            reached.set()
            await asyncio.Event().wait()  # never returns: cancelled with the subscription
        handled.append(message.body)

    async with backend_for() as backend:
        subscription = await backend.subscribe([topic], handler, group=group)
        async with asyncio.timeout(TIMEOUT):
            await reached.wait()
        await subscription.cancel()
        assert handled == list(range(stuck))
        # The rest went back to the queue; what was handled did not.
        again = Received()
        await backend.subscribe([topic], again, group=group)
        await again.wait(total - stuck)
    assert again.bodies == list(range(stuck, total))


async def test_a_cut_mid_batch_redelivers_only_what_was_not_acked(raw, prefix, durable_queues):
    total, slow, held = 30, 9, 10
    group, topic = prefix.replace(".", "-"), f"{prefix}.n"
    name = await fill_group_queue(raw, group, topic, total)
    durable_queues.append(name)
    calls: Counter[int] = Counter()
    delivered, reached, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def handler(message: Message) -> None:
        n = message.body
        calls[n] += 1
        if n == 0:
            await delivered.wait()  # the rest waits as one batch
        elif n == slow:
            await asyncio.sleep(2 * ACK_INTERVAL)  # slow work: 1..9 are acked without waiting
        elif n == held and calls[n] == 1:
            reached.set()
            await release.wait()  # the connection is cut meanwhile

    async with TcpProxy(5672) as proxy:
        broker = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        async with backend_for(broker, **{"moksha.reconnect_delay": 0.1}) as backend:
            await backend.subscribe([topic], handler, group=group)
            async with asyncio.timeout(TIMEOUT):
                while await ready_count(raw, name):
                    await asyncio.sleep(0.01)
            delivered.set()
            async with asyncio.timeout(TIMEOUT):
                await reached.wait()
            # A confirmed publish on the same connection: the acks sent before it
            # have reached the broker, whatever the cut does to what follows.
            await backend.publish(Message(f"{prefix}.nobody", "flush"))
            await proxy.cut()
            await until(lambda: proxy.connections_made == 2 and backend.connected)
            release.set()  # its handler returns on a dead channel: no ack can be sent
            await until(lambda: set(calls) == set(range(total)) and calls[held] == 2)
            await backend.publish(Message(topic, total))  # the subscription still works
            await until(lambda: calls[total] == 1)
    assert all(calls[n] == 1 for n in range(held))  # acked before the cut: not redelivered
