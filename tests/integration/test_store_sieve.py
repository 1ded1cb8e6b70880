"""The store's Sieve vacation records, and the migration that added them to a v1 database
holding data."""

from __future__ import annotations

import sqlite3

import anyio
import pytest

from stalwart_py.store import LocalDelivery
from stalwart_py.store.engine import connect
from stalwart_py.store.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from stalwart_py.store.sqlite import DATABASE_FILE, SqliteStore

pytestmark = pytest.mark.anyio


async def test_claims_are_once_per_sender_handle_and_period(store):
    bob = await store.add_account("bob@example.test", "hash", None)
    assert await store.claim_vacation_reply(bob.id, "ann@remote.test", "h", 3600)
    assert not await store.claim_vacation_reply(bob.id, "ANN@remote.test", "h", 3600)
    assert await store.claim_vacation_reply(bob.id, "ann@remote.test", "other", 3600)
    assert await store.claim_vacation_reply(bob.id, "carl@remote.test", "h", 3600)
    carol = await store.add_account("carol@example.test", "hash", None)
    assert await store.claim_vacation_reply(carol.id, "ann@remote.test", "h", 3600)


async def test_an_expired_claim_is_purged_and_claimable_again(store):
    bob = await store.add_account("bob@example.test", "hash", None)
    assert await store.claim_vacation_reply(bob.id, "ann@remote.test", "h", 0.05)
    await anyio.sleep(0.1)  # ok: the claim's period is measured by the clock and must pass
    assert await store.claim_vacation_reply(bob.id, "ann@remote.test", "h", 0.05)
    rows = await store._engine.read(
        lambda c: c.execute("SELECT COUNT(*) FROM sieve_vacation").fetchone()[0]
    )
    assert rows == 1


async def test_concurrent_claims_have_one_winner(store):
    bob = await store.add_account("bob@example.test", "hash", None)
    results = []

    async def claim():
        results.append(await store.claim_vacation_reply(bob.id, "ann@remote.test", "h", 60))

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(claim)
    assert results.count(True) == 1


async def test_deleting_the_account_deletes_its_claims(store):
    bob = await store.add_account("bob@example.test", "hash", None)
    await store.claim_vacation_reply(bob.id, "ann@remote.test", "h", 60)
    await store.delete_account("bob@example.test")
    rows = await store._engine.read(
        lambda c: c.execute("SELECT COUNT(*) FROM sieve_vacation").fetchone()[0]
    )
    assert rows == 0


async def test_a_v1_database_with_data_is_migrated(tmp_path):
    # A version 1 database, as stalwart-py 0.1 left it, with an account, a mailbox and an
    # active script.
    conn = connect(tmp_path / DATABASE_FILE)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN IMMEDIATE")
    MIGRATIONS[0](conn)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO domains(name, created) VALUES ('example.test', 0)")
    conn.execute(
        "INSERT INTO accounts(id, address, domain, secret, created)"
        " VALUES (1, 'bob@example.test', 'example.test', 'hash', 0)"
    )
    conn.execute(
        "INSERT INTO mailboxes(id, account_id, name, uidvalidity) VALUES (1, 1, 'INBOX', 1)"
    )
    conn.execute(
        "INSERT INTO sieve_scripts(account_id, name, body, active) VALUES (1, 'main', 'keep;', 1)"
    )
    conn.execute("COMMIT")
    conn.close()
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        version = await store._engine.read(lambda c: c.execute("PRAGMA user_version").fetchone()[0])
        assert version == SCHEMA_VERSION >= 2
        account = await store.get_account("bob@example.test")
        assert account is not None and account.id == 1
        assert (await store.active_script(1)).body == "keep;"
        [outcome] = await store.deliver(b"Subject: x\r\n\r\nbody\r\n", [LocalDelivery(1)])
        assert outcome.error is None
        assert await store.claim_vacation_reply(1, "ann@remote.test", "h", 60)
        assert await store.integrity_check() == "ok"
    finally:
        await store.close()


def test_migrating_twice_changes_nothing(tmp_path):
    conn = connect(tmp_path / DATABASE_FILE)
    assert migrate(conn) == 0
    assert migrate(conn) == SCHEMA_VERSION
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "sieve_vacation" in tables
    conn.close()
    with pytest.raises(sqlite3.OperationalError):
        sqlite3.connect(tmp_path / DATABASE_FILE).execute("CREATE TABLE sieve_vacation (x)")
