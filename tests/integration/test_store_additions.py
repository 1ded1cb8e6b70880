"""Store behaviour added for IMAP: blob ids are never given twice (so IMAP can cache what it
derives from a body by its id), and methods, each SQLite override checked against the default:
``read_blob_prefixes`` (the header blocks of many messages in one read, for FETCH of header
fields over a mailbox) and ``structures_matching`` (the pre-filter of SEARCH on headers)."""

from __future__ import annotations

import pytest

from stalwart_py.store import Store

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(new_store):
    store = new_store()
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


async def test_structures_matching_is_a_superset_filter(store):
    await store.add_domain("example.test")
    account = await store.add_account("bob@example.test", "secret-hash", None)
    box = await store.get_mailbox(account.id, "INBOX")
    subjects = [
        b"Zebra crossing",
        "Gr\u00fc\u00dfe aus K\u00f6ln".encode(),  # raw UTF-8
        b"=?UTF-8?Q?Stra=C3=9Fe?=",
        b"nothing to see",
    ]
    uids = []
    for subject in subjects:
        info = await store.append(box.id, b"Subject: " + subject + b"\r\n\r\nbody")
        uids.append(info.uid)
    for backend in (store.structures_matching, lambda *a: Store.structures_matching(store, *a)):
        found = await backend(box.id, uids, ["ZEBRA", "=?"])
        assert sorted(found) == [uids[0], uids[2]]
        assert found[uids[0]].info.uid == uids[0]
        assert "Zebra" in found[uids[0]].structure
        assert sorted(await backend(box.id, uids, ["\u00df", "SEE"])) == [uids[1], uids[3]]
        assert sorted(await backend(box.id, uids, ["\u00dc", "50%", "_"])) == []
        assert sorted(await backend(box.id, uids[3:], ["zebra"])) == []


async def test_blob_ids_are_never_given_again(store):
    await store.add_domain("example.test")
    account = await store.add_account("bob@example.test", "secret-hash", None)
    box = await store.get_mailbox(account.id, "INBOX")
    first = await store.append(box.id, b"Subject: one\r\n\r\n1", flags=frozenset({"\\Deleted"}))
    await store.expunge(box.id)  # the largest blob id is gone...
    second = await store.append(box.id, b"Subject: two\r\n\r\n2")
    assert second.blob_id > first.blob_id  # ... and not given again
    again = await store.append(box.id, b"Subject: two\r\n\r\n2")
    assert again.blob_id == second.blob_id  # the same bytes still share one blob
