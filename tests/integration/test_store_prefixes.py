"""``Store.read_blob_prefixes``: the header blocks of many messages in one read (added for
IMAP FETCH of header fields over a whole mailbox); the SQLite override and the default."""

from __future__ import annotations

import pytest

from stalwart_py.store import Store
from stalwart_py.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path):
    store = SqliteStore(tmp_path)
    await store.open()
    yield store
    await store.close()


async def test_prefixes_of_many_blobs(store):
    await store.add_domain("example.test")
    account = await store.add_account("bob@example.test", "secret-hash", None)
    box = await store.get_mailbox(account.id, "INBOX")
    first = await store.append(box.id, b"Subject: one\r\n\r\n" + b"x" * 100_000)
    second = await store.append(box.id, b"Subject: two\r\n\r\nshort")
    lengths = {first.blob_id: 16, second.blob_id: 1000, 999_999: 10}
    expected = {
        first.blob_id: b"Subject: one\r\n\r\n",
        second.blob_id: b"Subject: two\r\n\r\nshort",
    }
    assert await store.read_blob_prefixes(lengths) == expected
    assert await Store.read_blob_prefixes(store, lengths) == expected  # the default
    assert await store.read_blob_prefixes({}) == {}
