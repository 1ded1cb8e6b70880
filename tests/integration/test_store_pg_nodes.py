"""Several nodes on one PostgreSQL database: what SQLite got from having one writer, the
PostgreSQL store must get from row locks. Each node here is a ``PostgresStore`` of its own
(its own writer connection, readers and data directory), as two servers on two machines."""

from __future__ import annotations

import anyio
import pytest

from stalwart_py.store import QuotaExceeded
from stalwart_py.store.blobs import prepare_blob
from tests.integration.test_store import message

pytestmark = pytest.mark.anyio
psycopg = pytest.importorskip("psycopg")
from stalwart_py.store.postgresql import PostgresStore  # noqa: E402

PER_NODE = 40


@pytest.fixture
async def nodes(postgres, tmp_path):
    url = postgres.database()
    stores = [PostgresStore(url, tmp_path / name) for name in ("a", "b")]
    for store in stores:
        await store.open()
    yield stores
    for store in stores:
        await store.close()


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
                    await anyio.sleep(0.01)
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
