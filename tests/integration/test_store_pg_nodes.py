"""Several nodes on one PostgreSQL database: what SQLite got from having one writer, the
PostgreSQL store must get from row locks. Each node here is a ``PostgresStore`` of its own
(its own writer connection, readers and data directory), as two servers on two machines."""

from __future__ import annotations

import functools
import threading

import anyio
import pytest

from stalwart_py.store import QuotaExceeded
from stalwart_py.store.blobs import prepare_blob
from tests.integration.test_store import message

psycopg = pytest.importorskip("psycopg")
from stalwart_py.store import pg_notify  # noqa: E402
from stalwart_py.store.change_bus import ChangeSet  # noqa: E402

PER_NODE = 40
pytestmark = pytest.mark.anyio


@pytest.fixture
def nodes(pg_node_stores):
    return pg_node_stores


async def test_uids_and_modseqs_from_two_nodes_have_no_gaps_and_no_twins(nodes):
    a, b = nodes
    await a.add_domain("example.test")
    account = await a.add_account("bob@example.test", "h", None)
    box = await b.get_mailbox(account.id, "INBOX")
    results = []

    async def deliver(store, base):
        for n in range(PER_NODE):
            results.append(await store.append(box.id, message(base + n)))

    async with anyio.create_task_group() as group:
        for node, store in enumerate(nodes):
            for session in range(4):  # several sessions per node: batches of several writes
                group.start_soon(deliver, store, 1000 * node + 100 * session)
    total = 2 * 4 * PER_NODE
    assert sorted(info.uid for info in results) == list(range(1, total + 1))
    assert len({info.modseq for info in results}) == total
    assert len({info.blob_id for info in results}) == total  # every body its own id
    listed = await a.messages(box.id)
    assert [m.uid for m in listed] == list(range(1, total + 1))
    reopened = await b.get_mailbox(account.id, "INBOX")
    assert reopened.uidnext == total + 1


async def test_a_quota_is_exact_when_two_nodes_fill_it_at_once(nodes):
    a, b = nodes
    await a.add_domain("example.test")
    account = await a.add_account("small@example.test", "h", None, quota_messages=30)
    box = await a.get_mailbox(account.id, "INBOX")
    accepted = refused = 0

    async def deliver(store, base):
        nonlocal accepted, refused
        for n in range(25):
            try:
                await store.append(box.id, message(base + n))
            except QuotaExceeded:
                refused += 1
            else:
                accepted += 1

    async with anyio.create_task_group() as group:
        group.start_soon(deliver, a, 0)
        group.start_soon(deliver, b, 1000)
    assert (accepted, refused) == (30, 20)
    assert (await b.get_account_by_id(account.id)).used_messages == 30
    assert len(await b.messages(box.id)) == 30
    assert await a.integrity_check() == "ok"


async def test_the_same_body_from_two_nodes_is_stored_once(nodes):
    a, b = nodes
    await a.add_domain("example.test")
    account = await a.add_account("bob@example.test", "h", None)
    box = await a.get_mailbox(account.id, "INBOX")
    body = await prepare_blob(message(7))
    # A third writer stores the body and has not committed yet: both nodes look for it, do
    # not see it, and insert it, which waits for the third. When it commits, each node must
    # count on its row instead of failing on the unique hash.
    with psycopg.connect(a.url) as third:
        third.execute(
            "INSERT INTO blobs(id, hash, size, refs, structure, data)"
            " VALUES (%s, %s, %s, 0, %s, %s)",
            (10**9, body.digest, len(body.data), body.structure, body.data),
        )
        async with anyio.create_task_group() as group:
            for store in (a, b):
                group.start_soon(store.append, box.id, message(7))
            with anyio.fail_after(10):
                # ok: a wait for a lock is announced to no one; pg_stat_activity shows it
                while await waiting_for_locks(third) < 2:  # noqa: ASYNC110
                    await anyio.sleep(0.01)  # ok: polls pg_stat_activity, as above
            third.commit()
    assert {info.blob_id for info in await a.messages(box.id)} == {10**9}
    assert await b.integrity_check() == "ok"  # two references, counted


async def waiting_for_locks(conn) -> int:
    def count() -> int:
        with psycopg.connect(conn.info.dsn, autocommit=True) as other:
            return other.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            ).fetchone()[0]

    return await anyio.to_thread.run_sync(count)


async def test_a_delivery_on_one_node_wakes_a_watch_on_the_other(nodes):
    a, b = nodes
    await a.add_domain("example.test")
    account = await a.add_account("bob@example.test", "h", None)
    box = await a.get_mailbox(account.id, "INBOX")
    with b.changes.watch(box.id) as watch, b.changes.watch_account(account.id) as everywhere:
        for n in range(3):
            await a.append(box.id, message(n))
            with anyio.fail_after(0.2):  # the promise: within 200 ms
                await watch.wait()
        await a.create_mailbox(account.id, "Projects")
        with anyio.fail_after(0.2):
            await everywhere.wait()
    assert [m.uid for m in await b.messages(box.id)] == [1, 2, 3]


async def test_a_listener_that_lost_its_connection_resyncs(nodes, postgres):
    a, b = nodes
    await a.add_domain("example.test")
    account = await a.add_account("bob@example.test", "h", None)
    box = await a.get_mailbox(account.id, "INBOX")
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as admin:
        # B's listening session ends (a server restart, a failover, a cut): what A commits
        # meanwhile is not heard, so B wakes every watch when it listens again.
        assert b._engine.listener.connected.is_set()
        terminated = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE query = %s AND datname != 'postgres'",
            (f"LISTEN {pg_notify.CHANNEL}",),
        ).fetchone()[0]
    assert terminated == 2  # A's and B's
    with b.changes.watch(box.id) as watch:
        await a.append(box.id, message(1))
        with anyio.fail_after(5):
            await watch.wait()
        with anyio.fail_after(5):
            # ok: a threading.Event, set by the listener's thread
            while not b._engine.listener.connected.is_set():  # noqa: ASYNC110
                await anyio.sleep(0.01)  # ok: a threading.Event cannot be awaited
        watch.clear()
        await a.append(box.id, message(2))  # and NOTIFY carries the next one again
        with anyio.fail_after(0.2):
            await watch.wait()


def test_a_change_set_too_large_for_one_notification_wakes_everything():
    changes = ChangeSet(set(range(5000)), {1: set(range(5000))}, {1})
    text = pg_notify.payload("node", changes)
    assert len(text.encode()) < 8000
    assert ChangeSet.decode(text.partition(" ")[2].encode()).everything
    small = pg_notify.payload("node", ChangeSet({5}, {1: {5}}))
    assert ChangeSet.decode(small.partition(" ")[2].encode()).mailboxes == {5}


@pytest.mark.parametrize("inline", [False, True], ids=["thread", "loop"])
async def test_a_write_chosen_as_a_deadlock_victim_runs_again(nodes, inline):
    """Node b's write in its writer thread; node a's there too, or (``inline``) in a batch on
    the event loop (``pg_batch.py``), whose function replays: it waits once all the same."""
    a, b = nodes
    await a.add_domain("example.test")
    account = await a.add_account("bob@example.test", "h", None)
    first = (await a.get_mailbox(account.id, "INBOX")).id
    second = (await a.get_mailbox(account.id, "Sent")).id
    both_hold_one = threading.Barrier(2, timeout=10)
    waited: set[int] = set()
    committed: list[int] = []

    def locking(one: int, other: int):
        def write(txn) -> int:
            bump = "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?"
            txn.execute(bump, (one,))
            if one not in waited:  # the first run of each: both hold a row the other wants
                waited.add(one)
                both_hold_one.wait()
            txn.execute(bump, (other,))
            return one

        return write

    async def run(store, func, inline: bool) -> None:
        committed.append(await store._engine.write(func, inline=inline))

    async with anyio.create_task_group() as group:
        group.start_soon(run, a, locking(first, second), inline)
        group.start_soon(run, b, locking(second, first), False)
    assert sorted(committed) == sorted([first, second])  # the victim ran again
    # each write committed once: each mailbox bumped by both, no more
    assert (await a.get_mailbox(account.id, "INBOX")).highestmodseq == 3
    assert (await a.get_mailbox(account.id, "Sent")).highestmodseq == 3


async def test_a_cluster_lease_is_held_by_one_node_and_passes_when_its_session_ends(
    nodes, postgres
):
    a, b = nodes
    first, second = a.cluster_lease("sweep"), b.cluster_lease("sweep")
    assert await anyio.to_thread.run_sync(first.try_acquire)
    assert not await anyio.to_thread.run_sync(second.try_acquire)
    assert a.cluster_lease("other").try_acquire()  # another name, another lock
    # The holder's session ends (its node died, its connection was cut): the lock goes too.
    with psycopg.connect(postgres.database(), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks"
            " WHERE locktype = 'advisory' AND objid = %s::bigint & 4294967295",
            (first.key,),
        )
    assert not await anyio.to_thread.run_sync(first.held)
    assert await anyio.to_thread.run_sync(second.try_acquire)
    second.release()
    assert await anyio.to_thread.run_sync(first.try_acquire)
    first.release()


async def test_run_singleton_stops_the_work_of_a_node_that_lost_its_lease(
    nodes, postgres, tmp_path, monkeypatch
):
    from stalwart_py import singleton

    monkeypatch.setattr(singleton, "CHECK", 0.05)
    monkeypatch.setattr(singleton, "POLL", 0.05)
    a, b = nodes
    running: list[str] = []
    events: list[tuple[str, str]] = []
    changed = anyio.Event()

    def work(name):
        async def run():
            running.append(name)
            events.append(("start", name))
            changed.set()
            try:
                await anyio.sleep_forever()
            finally:
                running.remove(name)
                events.append(("stop", name))
                changed.set()

        return run

    async def until(condition) -> None:
        nonlocal changed
        with anyio.fail_after(10):
            while not condition():
                await changed.wait()
                changed = anyio.Event()

    leases = {"a": a.cluster_lease("reports"), "b": b.cluster_lease("reports")}
    async with anyio.create_task_group() as group:
        for name, lease in leases.items():
            run = functools.partial(singleton.run_singleton, lease=lease)
            group.start_soon(run, tmp_path, "reports", work(name))
        await until(lambda: running)
        await anyio.sleep(0.2)  # ok: several CHECK/POLL periods, in which b must not start
        [holder] = running
        with psycopg.connect(postgres.database(), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                " AND objid = %s::bigint & 4294967295",
                (leases[holder].key,),
            )
        # The holder stops its work, and the work starts again on one node. Not strictly
        # one after the other: the lock is free the moment the session ends, and the holder
        # hears of it at its next CHECK, so the other node may start first (pg_lease.py).
        starts = lambda: [name for kind, name in events if kind == "start"]  # noqa: E731
        await until(lambda: ("stop", holder) in events and len(starts()) == 2)
        await anyio.sleep(0.2)  # ok: several CHECK/POLL periods, in which nothing more starts
        assert events[0] == ("start", holder)
        assert len(starts()) == 2 and [e for e in events if e[0] == "stop"] == [("stop", holder)]
        assert len(running) == 1
        group.cancel_scope.cancel()
