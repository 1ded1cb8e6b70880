"""The store's app passwords, on both backends: kept per account with unique names, found by
selector, bounded in number, revoked by deletion, gone with their account."""

from __future__ import annotations

import pytest

from stalwart_py.store import AlreadyExists, NotFound, StoreError

pytestmark = pytest.mark.anyio


async def test_add_list_find_and_revoke(store):
    bob = await store.add_account("bob@example.test", "hash", None)
    carol = await store.add_account("carol@example.test", "hash", None)
    phone = await store.add_app_password(bob.id, "phone", "abcd", "h1", ["imap", "smtp"], limit=5)
    laptop = await store.add_app_password(bob.id, "laptop", "wxyz", "h2", ["pop3"], limit=5)
    await store.add_app_password(carol.id, "phone", "abcd", "h3", ["imap"], limit=5)
    assert phone.protocols == ("imap", "smtp")
    listed = await store.list_app_passwords(bob.id)
    assert [(a.id, a.name, a.protocols) for a in listed] == [
        (phone.id, "phone", ("imap", "smtp")),
        (laptop.id, "laptop", ("pop3",)),
    ]
    found = await store.app_password_credentials(bob.id, "abcd")
    assert [(c.id, c.name, c.secret, c.protocols) for c in found] == [
        (phone.id, "phone", "h1", ("imap", "smtp"))
    ]
    assert await store.app_password_credentials(bob.id, "zzzz") == []

    with pytest.raises(AlreadyExists):
        await store.add_app_password(bob.id, "phone", "efgh", "h4", ["imap"], limit=5)
    await store.delete_app_password(bob.id, phone.id)
    assert await store.app_password_credentials(bob.id, "abcd") == []
    with pytest.raises(NotFound):
        await store.delete_app_password(bob.id, phone.id)
    carols = await store.list_app_passwords(carol.id)
    with pytest.raises(NotFound):  # one account cannot revoke another's
        await store.delete_app_password(bob.id, carols[0].id)
    assert [a.name for a in await store.list_app_passwords(carol.id)] == ["phone"]


async def test_the_limit_and_a_deleted_account(store):
    bob = await store.add_account("bob@example.test", "hash", None)
    await store.add_app_password(bob.id, "one", "aaaa", "h", ["imap"], limit=2)
    await store.add_app_password(bob.id, "two", "bbbb", "h", ["imap"], limit=2)
    with pytest.raises(StoreError, match="at most 2"):
        await store.add_app_password(bob.id, "three", "cccc", "h", ["imap"], limit=2)
    await store.delete_account("bob@example.test")
    assert await store.list_app_passwords(bob.id) == []
    with pytest.raises(NotFound):
        await store.add_app_password(bob.id, "four", "dddd", "h", ["imap"], limit=2)
