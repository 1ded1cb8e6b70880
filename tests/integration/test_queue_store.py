"""The store's queue additions: a DSN queued with the attempt's outcome, and the wake-up."""

from __future__ import annotations

import anyio
import pytest

from stalwart_py.store import OutboundMessage, QueuedRecipient, RecipientUpdate
from stalwart_py.store.change_hub import QUEUE_CHANNEL

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(new_store):
    store = new_store()
    await store.open()
    yield store
    await store.close()


def message(*recipients: str, mail_from: str = "a@x.test") -> OutboundMessage:
    return OutboundMessage(mail_from, tuple(QueuedRecipient(r) for r in recipients))


async def test_failure_and_its_dsn_are_one_write(store):
    queue_id = await store.enqueue(b"Subject: x\r\n\r\nbody\r\n", message("b@y.test"))
    [recipient] = (await store.queue_entry(queue_id)).recipients
    dsn = (b"Subject: bounce\r\n\r\n", message("a@x.test", mail_from=""))
    await store.update_queue_recipients(
        queue_id, [RecipientUpdate(recipient.id, "failed", 0.0, "550 no")], notification=dsn
    )
    assert await store.queue_entry(queue_id) is None  # nothing pending: removed
    [bounce] = await store.queue_entries()
    assert (bounce.mail_from, [r.address for r in bounce.recipients]) == ("", ["a@x.test"])


async def test_no_dsn_for_a_message_deleted_meanwhile(store):
    queue_id = await store.enqueue(b"Subject: x\r\n\r\n", message("b@y.test"))
    [recipient] = (await store.queue_entry(queue_id)).recipients
    await store.delete_queue_entry(queue_id)
    dsn = (b"Subject: bounce\r\n\r\n", message("a@x.test", mail_from=""))
    await store.update_queue_recipients(
        queue_id, [RecipientUpdate(recipient.id, "failed", 0.0, "550 no")], notification=dsn
    )
    assert await store.queue_entries() == []


async def test_enqueue_and_retry_wake_the_queue_watch(store):
    with store.changes.watch(QUEUE_CHANNEL) as watch:
        await store.enqueue(b"Subject: x\r\n\r\n", message("b@y.test"))
        with anyio.fail_after(5):
            await watch.wait()
        await store.retry_queue()
        with anyio.fail_after(5):
            await watch.wait()


@pytest.fixture
async def two_nodes(new_store):
    """Two stores on one database, as two nodes' queue runners (on SQLite, two processes'
    stores on one file)."""
    stores = [new_store(), new_store()]
    for node in stores:
        await node.open()
    yield stores
    for node in stores:
        await node.close()


async def test_two_runners_leasing_at_once_never_get_the_same_recipient(two_nodes):
    a, b = two_nodes
    for n in range(40):
        await a.enqueue(b"Subject: x\r\n\r\n", message(f"r{n}@y.test", f"s{n}@z.test"))
    now = (await a.queue_entries())[-1].created + 1
    taken: dict[str, list[int]] = {"a": [], "b": []}

    async def run(name, node):
        while True:
            entries, leased = await node.lease_queue_entries(name, now, 300.0, limit=7)
            if not leased:
                return
            pending = {r.id for e in entries for r in e.recipients}
            assert leased <= pending  # every leased recipient comes with its message
            taken[name].extend(leased)

    async with anyio.create_task_group() as group:
        group.start_soon(run, "a", a)
        group.start_soon(run, "b", b)
    everyone = [r.id for e in await a.queue_entries() for r in e.recipients]
    assert sorted(taken["a"] + taken["b"]) == sorted(everyone)  # each once, none left out
    assert len(everyone) == 80


async def test_a_lease_never_released_is_taken_by_another_runner_once_it_lapses(two_nodes):
    a, b = two_nodes
    queue_id = await a.enqueue(b"Subject: x\r\n\r\n", message("r@y.test"))
    now = (await a.queue_entry(queue_id)).created + 1
    [entry], leased = await a.lease_queue_entries("dead", now, 300.0)
    assert entry.id == queue_id and len(leased) == 1
    assert (await b.lease_queue_entries("alive", now + 299, 300.0))[1] == frozenset()
    [entry], taken = await b.lease_queue_entries("alive", now + 300, 300.0)
    assert taken == leased
    # The dead runner's renewal (had it come back) no longer holds the recipient.
    assert await a.renew_queue_leases("dead", sorted(leased), now + 600) == 0
    assert await b.renew_queue_leases("alive", sorted(leased), now + 900) == 1
    assert (await a.lease_queue_entries("other", now + 800, 300.0))[1] == frozenset()


async def test_an_outcome_ends_the_lease(store):
    queue_id = await store.enqueue(b"Subject: x\r\n\r\n", message("r@y.test", "s@y.test"))
    now = (await store.queue_entry(queue_id)).created + 1
    _, leased = await store.lease_queue_entries("a", now, 300.0)
    first, second = sorted(leased)
    await store.update_queue_recipients(queue_id, [RecipientUpdate(first, "pending", now, "451")])
    assert (await store.lease_queue_entries("b", now, 300.0))[1] == {first}
    await store.renew_queue_leases("a", [second], None)  # an attempt that ended in an error
    assert (await store.lease_queue_entries("b", now, 300.0))[1] == {second}
    assert await store.release_queue_leases("a") == 0  # both are b's now
    assert await store.release_queue_leases() == 2
