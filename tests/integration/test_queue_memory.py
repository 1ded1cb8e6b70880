"""The queue's side of the deferred spool (``QueueManager.spool``), without SMTP: destinations
settling independently, a store that refuses a write, memory limits."""

from __future__ import annotations

import pytest

from stalwart_py.queue import spool as spool_module
from stalwart_py.store import OutboundMessage, QueuedRecipient, StoreError
from tests.support.queue_world import MESSAGE, SENDER, make_world, running

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(tmp_path, ca):
    async with make_world(tmp_path, ca) as world:
        for domain, address in (("remote.test", "127.0.0.8"), ("other.test", "127.0.0.9")):
            world.dns.add(domain, "MX", f"10 mx.{domain}.")
            world.dns.add(f"mx.{domain}", "A", address)
        yield world


def outbound(*recipients: str) -> OutboundMessage:
    return OutboundMessage(SENDER, tuple(QueuedRecipient(r) for r in recipients))


async def test_only_the_deferred_destination_is_written(world):
    busy = await world.peer("127.0.0.8", data_replies=["421 4.7.0 Busy"])
    await world.peer("127.0.0.9", port=busy.port)
    other = world.peers[1]
    async with running(world.manager(port=busy.port)) as manager:
        assert await manager.spool(MESSAGE, outbound("bob@remote.test", "dave@other.test"))
        await manager.flush()
    assert [m.rcpt_tos for m in other.received] == [["dave@other.test"]]
    [entry] = await world.store.queue_entries()
    assert [(r.address, r.attempts) for r in entry.recipients] == [("bob@remote.test", 1)]
    [blob] = (await world.store.read_blobs([entry.blob_id])).values()
    assert blob == MESSAGE  # unsigned, as it was handed over


async def test_a_refused_write_is_kept_and_written_at_the_next_scan(world, monkeypatch):
    peer = await world.peer("127.0.0.8", data_replies=["451 4.3.0 Later"])
    enqueue = world.store.enqueue
    failures = []

    async def full_disk_once(data, message):
        if not failures:
            failures.append(message)
            raise StoreError("database or disk is full")
        return await enqueue(data, message)

    monkeypatch.setattr(world.store, "enqueue", full_disk_once)
    async with running(world.manager(port=peer.port)) as manager:
        assert await manager.spool(MESSAGE, outbound("bob@remote.test"))
        await manager.flush()  # deferred; its write refused: held for the next try
        assert len(failures) == 1
        assert await world.store.queue_entries() == []
        await manager.flush()  # a scan writes it
        [entry] = await world.store.queue_entries()
    assert entry.recipients[0].attempts == 1


async def test_full_memory_and_a_stopped_queue_decline(world, monkeypatch):
    peer = await world.peer("127.0.0.8")
    manager = world.manager(port=peer.port)
    assert not await manager.spool(MESSAGE, outbound("bob@remote.test"))  # not running
    async with running(manager):
        monkeypatch.setattr(spool_module, "MAX_BYTES", len(MESSAGE) - 1)
        assert not await manager.spool(MESSAGE, outbound("bob@remote.test"))
        monkeypatch.setattr(spool_module, "MAX_BYTES", len(MESSAGE))
        monkeypatch.setattr(spool_module, "MAX_MESSAGES", 0)
        assert not await manager.spool(MESSAGE, outbound("bob@remote.test"))
        monkeypatch.setattr(spool_module, "MAX_MESSAGES", 1)
        assert await manager.spool(MESSAGE, outbound("bob@remote.test"))
        await manager.flush()
    assert len(peer.received) == 1
    assert await world.store.queue_entries() == []
