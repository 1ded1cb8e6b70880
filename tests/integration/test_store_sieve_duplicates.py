"""The store's tracking list of the Sieve duplicate test (RFC 7352 section 3): per account,
expiring, refreshed only with :last, capped with the oldest entries dropped first."""

from __future__ import annotations

import pytest

from stalwart_py.store import sqlite_sieve

pytestmark = pytest.mark.anyio


class Clock:
    """The store's clock, moved by hand: entries age without the test waiting."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(new_store, clock):
    store = new_store()
    store._engine.clock = clock
    await store.open()
    await store.add_domain("example.test")
    yield store
    await store.close()


async def test_entries_are_per_account_and_expire(store, clock):
    bob = await store.add_account("bob@example.test", "hash", None)
    carol = await store.add_account("carol@example.test", "hash", None)
    assert not await store.duplicate_seen(bob.id, "k")
    await store.record_duplicates(bob.id, [("k", 3600, False), ("short", 60, False)])
    assert await store.duplicate_seen(bob.id, "k") and await store.duplicate_seen(bob.id, "short")
    assert not await store.duplicate_seen(carol.id, "k")
    clock.now += 59
    assert await store.duplicate_seen(bob.id, "short")
    clock.now += 1  # the expiry itself: gone
    assert not await store.duplicate_seen(bob.id, "short")
    assert await store.duplicate_seen(bob.id, "k")


async def test_last_refreshes_the_expiry_and_its_absence_keeps_the_first(store, clock):
    bob = await store.add_account("bob@example.test", "hash", None)
    await store.record_duplicates(bob.id, [("first", 300, False), ("latest", 300, True)])
    clock.now += 150
    await store.record_duplicates(bob.id, [("first", 300, False), ("latest", 300, True)])
    clock.now += 200  # 350 s after the first record, 200 s after the second
    assert not await store.duplicate_seen(bob.id, "first")
    assert await store.duplicate_seen(bob.id, "latest")


async def test_the_list_is_capped_oldest_first(store, clock, monkeypatch):
    monkeypatch.setattr(sqlite_sieve, "MAX_DUPLICATES", 3)
    bob = await store.add_account("bob@example.test", "hash", None)
    for key in ("a", "b", "c", "d"):
        clock.now += 1
        await store.record_duplicates(bob.id, [(key, 3600, False)])
    assert [await store.duplicate_seen(bob.id, k) for k in "abcd"] == [False, True, True, True]
