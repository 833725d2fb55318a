"""Durable AMQP queues whose bindings follow the code, on the local RabbitMQ.

What a user checks: after a release moves a consumer to another topic,
messages on the old topic no longer pile up in its queue, and those already
there are dead-lettered with the reason instead of reaching ``consume()``.
"""

from __future__ import annotations

import asyncio

import aio_pika
from amqp_support import BROKER, backend_for, ready_count

from moksha.hub.backends.amqp_options import to_amqp
from moksha.hub.backends.amqp_registry import Registry, dead_letter_queue
from moksha.hub.backends.amqp_stale import DEAD_LETTER_BOUND
from moksha.message import Message
from support import TIMEOUT, Received, until
from tcp_proxy import TcpProxy


async def publish(raw: aio_pika.abc.AbstractChannel, topic: str, *bodies: object) -> None:
    """Publish as a plain AMQP program would, confirmed one by one."""
    exchange = await raw.get_exchange("amq.topic")
    for body in bodies:
        await exchange.publish(to_amqp(Message(topic, body)), routing_key=topic, mandatory=False)


async def recorded_bindings(queue: str) -> tuple[str, ...]:
    async with Registry.open(BROKER, "moksha") as registry:
        return registry.records[queue].bindings


async def start_and_stop(patterns: list[str], group: str) -> None:
    """One hub run of a consumer on ``patterns``: subscribe, then stop cleanly."""
    async with backend_for() as backend:
        subscription = await backend.subscribe(patterns, Received(), group=group)
        await subscription.cancel()


async def test_a_topic_changed_between_two_starts_is_no_longer_queued(prefix, raw, durable_queues):
    group = f"{prefix}.moved"
    queue = f"moksha.{group}"
    durable_queues += [queue, dead_letter_queue(queue)]
    await start_and_stop([f"{prefix}.old"], group)
    await publish(raw, f"{prefix}.old", "before")  # confirmed: routed by now
    assert await ready_count(raw, queue) == 1

    async with backend_for() as backend:  # the next release moved to .new
        received = Received()
        await backend.subscribe([f"{prefix}.new"], received, group=group)
        await publish(raw, f"{prefix}.old", *range(20))
        await publish(raw, f"{prefix}.new", "new")
        assert [m.topic for m in await received.wait(1)] == [f"{prefix}.new"]
        assert await recorded_bindings(queue) == (f"{prefix}.new",)
    # Stopped: the old topic lands nowhere, the new one still waits in the queue.
    await publish(raw, f"{prefix}.old", *range(20))
    await publish(raw, f"{prefix}.new", "waits")
    assert await ready_count(raw, queue) == 1


async def test_messages_queued_for_a_removed_pattern_are_dead_lettered_with_the_reason(
    prefix, raw, durable_queues
):
    group = f"{prefix}.dl"
    queue = f"moksha.{group}"
    durable_queues += [queue, dead_letter_queue(queue)]
    await start_and_stop([f"{prefix}.old"], group)
    await publish(raw, f"{prefix}.old", 1, 2, 3)

    async with backend_for() as backend:
        received = Received()
        await backend.subscribe([f"{prefix}.new"], received, group=group)
        await publish(raw, f"{prefix}.new", "after")
        await received.wait(1)  # after the three old ones, handled in order
        dead = await raw.declare_queue(dead_letter_queue(queue), passive=True)
        bodies = []
        for _ in range(3):
            letter = await dead.get(no_ack=True, timeout=5)
            assert letter.headers["moksha-dead-letter"] == f"{prefix}.old"
            reason = str(letter.headers["moksha-dead-letter-reason"])
            assert f"{prefix}.old" in reason and f"{prefix}.new" in reason
            bodies.append(letter.body)
        assert received.bodies == ["after"]  # the old ones never reached the handler
    assert bodies == [b"1", b"2", b"3"]
    assert await ready_count(raw, queue) == 0
    # Bounded: declaring it with other arguments would fail (PRECONDITION_FAILED).
    await raw.declare_queue(dead_letter_queue(queue), durable=True, arguments=DEAD_LETTER_BOUND)


async def test_a_pattern_added_and_one_removed_at_once(prefix, raw, durable_queues):
    group = f"{prefix}.swap"
    queue = f"moksha.{group}"
    durable_queues += [queue, dead_letter_queue(queue)]
    a, b, c = (f"{prefix}.{word}" for word in "abc")
    await start_and_stop([a, b], group)
    assert await recorded_bindings(queue) == (a, b)

    await start_and_stop([b, c], group)
    assert await recorded_bindings(queue) == (b, c)
    await publish(raw, a, "a")
    await publish(raw, b, "b")
    await publish(raw, c, "c")
    assert await ready_count(raw, queue) == 2  # a was not queued
    async with backend_for() as backend:
        received = Received()
        await backend.subscribe([b, c], received, group=group)
        assert sorted(m.topic for m in await received.wait(2)) == [b, c]


async def test_two_releases_running_at_once_share_the_union_without_flapping(
    prefix, raw, durable_queues
):
    group = f"{prefix}.rolling"
    queue = f"moksha.{group}"
    durable_queues += [queue, dead_letter_queue(queue)]
    old, new = f"{prefix}.old", f"{prefix}.new"
    await start_and_stop([old], group)

    async with backend_for() as release1, backend_for() as release2:
        got1, got2 = Received(), Received()
        first = await release1.subscribe([old], got1, group=group)
        await release2.subscribe([new], got2, group=group)
        assert await recorded_bindings(queue) == (new, old)

        # The old release restarts while the new one runs: it removes nothing.
        async with backend_for() as restarted:
            got1b = Received()
            await restarted.subscribe([old], got1b, group=group)
            assert await recorded_bindings(queue) == (new, old)
            await publish(raw, old, *range(10))
            await publish(raw, new, *range(10))
            dead = dead_letter_queue(queue)

            async def settled() -> int:
                handled = len(got1.messages) + len(got1b.messages) + len(got2.messages)
                return handled + (await ready_count(raw, dead) if await exists(dead) else 0)

            async with asyncio.timeout(TIMEOUT):
                while await settled() < 20:
                    await asyncio.sleep(0.02)
        # Each release handled only its own topic; a message that reached the other
        # release went back to the queue once, then to the dead letters.
        assert {m.topic for m in got1.messages + got1b.messages} <= {old}
        assert {m.topic for m in got2.messages} <= {new}
        assert await settled() == 20

        # The old release stops cleanly; the new one still runs: the old binding goes.
        await first.cancel()
        assert await recorded_bindings(queue) == (new,)
        await publish(raw, old, "gone")
        await publish(raw, new, "kept")
        await until(lambda: "kept" in got2.bodies)
    assert await ready_count(raw, queue) == 0


async def exists(name: str) -> bool:
    async with await aio_pika.connect(BROKER) as connection:
        probe = await connection.channel()
        try:
            await probe.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        return True


async def test_a_stopped_consumer_keeps_its_bindings_for_the_next_start(
    prefix, raw, durable_queues
):
    group = f"{prefix}.kept"
    queue = f"moksha.{group}"
    durable_queues.append(queue)
    await start_and_stop([f"{prefix}.k"], group)
    await publish(raw, f"{prefix}.k", *range(5))
    assert await ready_count(raw, queue) == 5
    assert await recorded_bindings(queue) == (f"{prefix}.k",)


async def test_a_queue_older_than_the_record_is_reported_once(prefix, raw, durable_queues, caplog):
    fresh, old = f"{prefix}.fresh", f"{prefix}.older"
    durable_queues += [f"moksha.{fresh}", f"moksha.{old}"]
    queue = await raw.declare_queue(f"moksha.{old}", durable=True)  # made by hand, bound by hand
    await queue.bind("amq.topic", routing_key=f"{prefix}.by-hand")
    with caplog.at_level("WARNING", logger="moksha.hub.backends.amqp_bindings"):
        await start_and_stop([f"{prefix}.a"], fresh)
        assert "existed before" not in caplog.text
        await start_and_stop([f"{prefix}.a"], old)
        assert f"queue moksha.{old} existed before Moksha recorded its bindings" in caplog.text
        caplog.clear()
        await start_and_stop([f"{prefix}.a"], old)  # recorded now
        assert "existed before" not in caplog.text


async def test_a_queue_deleted_behind_mokshas_back_is_bound_again(prefix, raw, durable_queues):
    group = f"{prefix}.again"
    queue = f"moksha.{group}"
    durable_queues.append(queue)
    await start_and_stop([f"{prefix}.t"], group)
    await raw.queue_delete(queue)  # rabbitmqctl delete_queue, say
    async with backend_for() as backend:
        received = Received()
        await backend.subscribe([f"{prefix}.t"], received, group=group)
        await publish(raw, f"{prefix}.t", "still bound")
        assert (await received.wait(1))[0].body == "still bound"


async def test_a_release_cut_off_during_the_overlap_binds_its_topics_again(
    prefix, raw, durable_queues
):
    group = f"{prefix}.cut"
    queue = f"moksha.{group}"
    durable_queues += [queue, dead_letter_queue(queue)]
    old, new = f"{prefix}.old", f"{prefix}.new"
    fast = {"moksha.reconnect_delay": 0.05, "moksha.reconnect_max_delay": 0.2}
    async with TcpProxy(5672) as proxy:
        behind_proxy = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        async with backend_for(behind_proxy, **fast) as release1, backend_for() as release2:
            await release1.subscribe([old], Received(), group=group)
            proxy.refuse = True
            await proxy.cut()  # release 1 is cut off: its liveness marker goes
            second = await release2.subscribe([new], Received(), group=group)
            assert await recorded_bindings(queue) == (new,)  # release 1 looked stopped
            proxy.refuse = False
            await until(lambda: release1.connected, timeout=3 * TIMEOUT)
            await until_async(lambda: recorded_bindings(queue), (new, old))
            await second.cancel()  # release 2 stops; release 1 runs on
            assert await recorded_bindings(queue) == (old,)


async def until_async(read, expected, timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while await read() != expected:
            await asyncio.sleep(0.02)
