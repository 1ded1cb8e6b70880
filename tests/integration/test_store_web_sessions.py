"""The store's web sessions (``sqlite_web_sessions``), on both backends: found by the token's
hash with their account, touched, listed, ended one at a time or all but one, ended by a
password change and by the account's deletion, and an account's stale ones swept as it signs
in again (and every session past its end, at anyone's sign-in)."""

from __future__ import annotations

import time

import pytest

from stalwart_py.store import NotFound

pytestmark = pytest.mark.anyio


async def add(store, key: str, account_id: int, *, pending=False, expires=None, idle_before=0.0):
    await store.add_web_session(
        key,
        account_id,
        "csrf-" + key,
        pending=pending,
        expires=expires if expires is not None else time.time() + 3600,
        peer="192.0.2.1",
        idle_before=idle_before,
    )


async def test_sessions_found_touched_listed_and_ended(store):
    bob = await store.add_account("bob@example.test", "hash-1", None)
    carol = await store.add_account("carol@example.test", "hash-1", None)
    await add(store, "a" * 64, bob.id)
    await add(store, "b" * 64, bob.id, pending=True)
    await add(store, "c" * 64, carol.id)
    with pytest.raises(NotFound):
        await add(store, "d" * 64, 9999)

    found = await store.get_web_session("a" * 64)
    assert found is not None and found.account.address == "bob@example.test"
    assert (found.csrf, found.pending, found.peer) == ("csrf-" + "a" * 64, False, "192.0.2.1")
    assert (await store.get_web_session("b" * 64)).pending
    assert await store.get_web_session("e" * 64) is None

    await store.touch_web_session("a" * 64, found.last_seen + 100)
    assert (await store.get_web_session("a" * 64)).last_seen == found.last_seen + 100
    assert {s.token_hash for s in await store.list_web_sessions(bob.id)} == {"a" * 64, "b" * 64}

    assert await store.delete_web_sessions(bob.id, keep="a" * 64) == 1
    assert await store.get_web_session("b" * 64) is None
    await store.delete_web_session("a" * 64)
    await store.delete_web_session("a" * 64)  # nothing: no error
    assert await store.list_web_sessions(bob.id) == []
    assert await store.get_web_session("c" * 64) is not None  # another account's stays


async def test_a_password_change_or_deletion_ends_them(store):
    bob = await store.add_account("bob@example.test", "hash-1", None)
    await add(store, "a" * 64, bob.id)
    await store.update_account("bob@example.test", quota_bytes=10)  # not the password
    assert await store.get_web_session("a" * 64) is not None
    await store.update_account("bob@example.test", secret="hash-2")
    assert await store.get_web_session("a" * 64) is None
    assert await store.list_web_sessions(bob.id) == []
    await add(store, "b" * 64, bob.id)
    await store.delete_account("bob@example.test")
    assert await store.get_web_session("b" * 64) is None


async def test_stale_sessions_go_at_the_next_sign_in(store):
    bob = await store.add_account("bob@example.test", "hash-1", None)
    now = time.time()
    await add(store, "a" * 64, bob.id, expires=now - 1)  # past its lifetime
    await add(store, "b" * 64, bob.id)
    await store.touch_web_session("b" * 64, now - 7200)  # idle for two hours
    await add(store, "c" * 64, bob.id)
    carol = await store.add_account("carol@example.test", "hash-1", None)
    await add(store, "f" * 64, carol.id)
    await add(store, "e" * 64, carol.id, expires=now + 0.5)
    await store._engine.write(  # past its end now (the insert itself sweeps the ended)
        lambda txn: txn.execute(
            "UPDATE web_sessions SET expires = ? WHERE token_hash = ?", (now - 1, "e" * 64)
        )
    )
    await store.touch_web_session("f" * 64, now - 7200)
    await add(store, "d" * 64, bob.id, idle_before=now - 3600)
    assert {s.token_hash for s in await store.list_web_sessions(bob.id)} == {"c" * 64, "d" * 64}
    # another account's: those past their end go too, the idle one waits for its end (or
    # for its account's next sign-in; it is refused when presented meanwhile)
    assert {s.token_hash for s in await store.list_web_sessions(carol.id)} == {"f" * 64}
