"""The queue's leases seen from a runner (``queue/manager.py``): a recipient another runner
leased and never released waits for its lease to lapse, on a store shared by several nodes;
the only runner of an unshared store ends such leases at its start."""

from __future__ import annotations

import anyio
import pytest

from tests.support.queue_world import make_world, running

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(tmp_path, ca):
    async with make_world(tmp_path, ca) as world:
        world.dns.add("remote.test", "MX", "10 mx.remote.test.")
        world.dns.add("mx.remote.test", "A", "127.0.0.8")
        yield world


async def test_a_lease_a_dead_node_left_is_delivered_once_it_lapses(world):
    world.store.shared_queue = True  # as on PostgreSQL: other nodes' runners may be alive
    peer = await world.peer("127.0.0.8")
    queue_id = await world.enqueue("bob@remote.test")
    _, leased = await world.store.lease_queue_entries("dead", world.clock.now(), 300.0)
    assert len(leased) == 1
    async with running(world.manager(port=peer.port, lease_time=300.0)) as manager:
        await manager.flush()
        world.clock.advance(290)
        await manager.flush()
        assert peer.received == []  # still the dead node's
        world.clock.advance(20)
        await manager.flush()
        [message] = peer.received
    assert message.rcpt_tos == ["bob@remote.test"]
    assert await world.store.queue_entry(queue_id) is None


async def test_a_delivery_under_way_keeps_its_lease_renewed(world):
    world.store.shared_queue = True
    peer = await world.peer("127.0.0.8", stall_data=True)
    await world.enqueue("bob@remote.test")
    async with running(world.manager(port=peer.port, lease_time=300.0)) as manager:
        await anyio.to_thread.run_sync(peer.wait_stalled)  # under way: leased until t + 300
        world.clock.advance(250)
        await manager.scan()  # past a third of the lease: renewed until t + 550
        later = world.clock.now() + 100
        assert (await world.store.lease_queue_entries("other", later, 300.0))[1] == frozenset()
        peer.stall_data = False
        await manager.flush()


async def test_a_runner_that_stops_ends_its_leases(world):
    world.store.shared_queue = True
    peer = await world.peer("127.0.0.8", stall_data=True)
    await world.enqueue("bob@remote.test")
    async with running(world.manager(port=peer.port, lease_time=300.0)):
        await anyio.to_thread.run_sync(peer.wait_stalled)  # under way when the server stops
    peer.stall_data = False
    _, leased = await world.store.lease_queue_entries("other", world.clock.now(), 300.0)
    assert len(leased) == 1  # another node takes it at once, not after the lease time


async def test_the_only_runner_ends_a_killed_predecessors_leases_at_start(world):
    peer = await world.peer("127.0.0.8")
    await world.enqueue("bob@remote.test")
    await world.store.lease_queue_entries("killed", world.clock.now(), 300.0)
    async with running(world.manager(port=peer.port)) as manager:
        await manager.flush()
        assert len(peer.received) == 1  # at once, not after five minutes
