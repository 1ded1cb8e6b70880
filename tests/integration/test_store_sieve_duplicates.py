"""The store's tracking list of the Sieve duplicate test (RFC 7352 section 3): per account,
expiring, refreshed only with :last, capped with the oldest entries dropped first."""

from __future__ import annotations

import anyio
import pytest

from stalwart_py.store import sqlite_sieve
from stalwart_py.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path):
    store = SqliteStore(tmp_path)
    await store.open()
    await store.add_domain("example.test")
    yield store
    await store.close()


async def test_entries_are_per_account_and_expire(store):
    bob = await store.add_account("bob@example.test", "hash", None)
    carol = await store.add_account("carol@example.test", "hash", None)
    assert not await store.duplicate_seen(bob.id, "k")
    await store.record_duplicates(bob.id, [("k", 3600, False), ("short", 0.05, False)])
    assert await store.duplicate_seen(bob.id, "k") and await store.duplicate_seen(bob.id, "short")
    assert not await store.duplicate_seen(carol.id, "k")
    await anyio.sleep(0.1)  # the clock must pass the expiry: no other way to age an entry
    assert not await store.duplicate_seen(bob.id, "short")
    assert await store.duplicate_seen(bob.id, "k")


async def test_last_refreshes_the_expiry_and_its_absence_keeps_the_first(store):
    bob = await store.add_account("bob@example.test", "hash", None)
    await store.record_duplicates(bob.id, [("first", 0.3, False), ("latest", 0.3, True)])
    await anyio.sleep(0.15)
    await store.record_duplicates(bob.id, [("first", 0.3, False), ("latest", 0.3, True)])
    await anyio.sleep(0.2)  # 0.35 s after the first record, 0.2 s after the second
    assert not await store.duplicate_seen(bob.id, "first")
    assert await store.duplicate_seen(bob.id, "latest")


async def test_the_list_is_capped_oldest_first(store, monkeypatch):
    monkeypatch.setattr(sqlite_sieve, "MAX_DUPLICATES", 3)
    bob = await store.add_account("bob@example.test", "hash", None)
    for key in ("a", "b", "c", "d"):
        await store.record_duplicates(bob.id, [(key, 3600, False)])
    assert [await store.duplicate_seen(bob.id, k) for k in "abcd"] == [False, True, True, True]
