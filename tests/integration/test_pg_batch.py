"""PostgreSQL's small writes in batches on the event loop (``store/pg_batch.py``): the
replayed functions keep what the writer thread's batches guarantee."""

from __future__ import annotations

import sqlite3
import threading

import anyio
import pytest

from stalwart_py.store.model import LocalDelivery
from tests.integration.test_store import message

psycopg = pytest.importorskip("psycopg")

pytestmark = pytest.mark.anyio
BUMP = "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?"


@pytest.fixture
def nodes(pg_node_stores):
    return pg_node_stores


async def _inbox(store) -> int:
    await store.add_domain("example.test")
    account = await store.add_account("bob@example.test", "h", None)
    return (await store.get_mailbox(account.id, "INBOX")).id


async def test_inline_writes_run_on_the_loop_and_one_failing_spares_the_others(nodes):
    store, _other = nodes
    box = await _inbox(store)
    threads = set()

    def bump(txn) -> int:
        threads.add(threading.current_thread())
        return txn.execute(BUMP + " RETURNING highestmodseq", (box,)).fetchone()[0]

    def broken(txn) -> None:
        txn.execute(BUMP, (box,))
        txn.execute("INSERT INTO mailboxes(id, account_id, name) VALUES (?, 1, 'INBOX')", (box,))

    results: list[object] = []

    async def write(func) -> None:
        try:
            results.append(await store._engine.write(func, inline=True))
        except sqlite3.IntegrityError as exc:  # as on SQLite: the mixins catch this class
            results.append(exc)

    before = (await store.get_mailbox_by_id(box)).highestmodseq
    async with anyio.create_task_group() as group:  # one batch: the three join it
        for func in (bump, broken, bump):
            group.start_soon(write, func)
    assert threads == {threading.main_thread()}
    assert sorted(r for r in results if isinstance(r, int)) == [before + 1, before + 2]
    assert sum(isinstance(r, sqlite3.IntegrityError) for r in results) == 1
    # the failing write's first statement was undone with it
    assert (await store.get_mailbox_by_id(box)).highestmodseq == before + 2


async def test_an_inline_write_asking_for_more_than_execute_goes_to_the_writer_thread(nodes):
    store, _other = nodes
    box = await _inbox(store)
    before = (await store.get_mailbox_by_id(box)).highestmodseq
    threads = []

    def write(txn) -> bool:
        threads.append(threading.current_thread())
        txn.execute(BUMP, (box,))
        return txn.conn.in_transaction  # not the replay's: undone, run again in the thread

    assert await store._engine.write(write, inline=True) is True
    assert threads[-1] is not threading.main_thread()
    assert (await store.get_mailbox_by_id(box)).highestmodseq == before + 1


async def test_deliveries_on_the_loop_keep_uids_dense_and_quotas_exact(nodes):
    a, b = nodes
    await a.add_domain("example.test")
    account = await a.add_account("small@example.test", "h", None, quota_messages=25)
    outcomes = []

    async def deliver(store, n: int) -> None:
        delivery = LocalDelivery(account.id, "INBOX")
        outcomes.extend(await store.deliver(message(n), [delivery]))

    async with anyio.create_task_group() as group:
        for n in range(40):
            group.start_soon(deliver, (a, b)[n % 2], n)
    uids = sorted(o.uid for o in outcomes if o.uid is not None)
    assert uids == list(range(1, 26))
    assert sum(o.uid is None for o in outcomes) == 15


async def test_a_lost_batch_connection_is_replaced(nodes):
    store, _other = nodes
    box = await _inbox(store)

    def pid(txn) -> int:
        return txn.execute("SELECT pg_backend_pid()").fetchone()[0]

    def bump(txn) -> None:
        txn.execute(BUMP, (box,))

    first = await store._engine.write(pid, inline=True)
    with psycopg.connect(store.url, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (first,))
    with anyio.fail_after(5):
        while store._engine._batches._conn.idle():  # noqa: ASYNC110 - the loss is seen by a reader callback
            await anyio.sleep(0.01)  # ok: the server ends the backend asynchronously
    before = (await store.get_mailbox_by_id(box)).highestmodseq
    await store._engine.write(bump, inline=True)  # on a new connection
    assert await store._engine.write(pid, inline=True) != first
    assert (await store.get_mailbox_by_id(box)).highestmodseq == before + 1


async def test_a_delivered_body_and_its_message_row_are_one_statement_or_the_usual_two(nodes):
    """``put_blob_with_message``: a new body with its sort fields and first copy; a body stored
    already takes a reference and no UID more; the other copies reference the first."""
    store, other = nodes
    await store.add_domain("example.test")
    bob = await store.add_account("bob@example.test", "h", None)
    eve = await store.add_account("eve@example.test", "h", None)
    data = message(1)
    two = [LocalDelivery(bob.id), LocalDelivery(eve.id, flags=frozenset({"\\Seen"}))]
    first = await store.deliver(data, two)
    again = await other.deliver(data, [LocalDelivery(bob.id)])  # the same body, stored
    assert [o.uid for o in first] == [1, 1] and [o.uid for o in again] == [2]
    box = await store.get_mailbox(bob.id, "INBOX")
    listed = await store.messages(box.id)
    assert [m.uid for m in listed] == [1, 2] and listed[0].blob_id == listed[1].blob_id
    assert (await store.get_mailbox(bob.id, "INBOX")).uidnext == 3
    eves = await store.messages((await store.get_mailbox(eve.id, "INBOX")).id)
    assert eves[0].flags == frozenset({"\\Seen"}) and eves[0].blob_id == listed[0].blob_id
    refs = await store._engine.read(
        lambda c: c.execute("SELECT refs FROM blobs WHERE id = ?", (listed[0].blob_id,)).fetchone()
    )
    assert refs == (3,)
    assert (await store.sort_fields([listed[0].blob_id]))[listed[0].blob_id].subject == "message 1"
    assert await store.integrity_check() == "ok"


async def test_a_write_of_many_statements_goes_to_the_writer_thread(nodes):
    """A delivery to many mailboxes would replay too long on the loop (``MAX_REPLAYED``)."""
    store, _other = nodes
    await store.add_domain("example.test")
    accounts = [await store.add_account(f"u{n}@example.test", "h", None) for n in range(20)]
    before = store._engine.batches
    outcomes = await store.deliver(message(1), [LocalDelivery(a.id) for a in accounts])
    assert [o.uid for o in outcomes] == [1] * 20
    assert store._engine.batches == before + 2  # the loop's, undone, then the thread's
    for account in accounts:
        box = await store.get_mailbox(account.id, "INBOX")
        assert [m.uid for m in await store.messages(box.id)] == [1]
    assert await store.integrity_check() == "ok"
