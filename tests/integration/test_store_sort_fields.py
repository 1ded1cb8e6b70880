"""The sort fields the store keeps per body (``sqlite_sort``): written with the body on
delivery, append and copy, gone with the body, and filled in for bodies stored before the
table existed by the migration that creates it."""

from __future__ import annotations

import sqlite3

import pytest

from stalwart_py.store import LocalDelivery, schema, sqlite_sort
from stalwart_py.store.sqlite import DATABASE_FILE, SqliteStore

pytestmark = pytest.mark.anyio

REPLY = (
    b"From: =?utf-8?q?J=C3=B6rg?= <Jorg@Example.DE>, other@x\r\n"
    b'To: undisclosed:;, "Ann" <ann@a.example>\r\n'
    b"Cc: <cc@c.example>\r\n"
    b"Subject: Re: [list] Fwd: =?utf-8?q?caf=C3=A9?= (fwd)\r\n"
    b"Date: Tue, 2 Jan 2024 10:00:00 +0100\r\n"
    b"Message-ID: <reply@x>\r\nIn-Reply-To: <parent@x> (the parent)\r\n"
    b"References: <root@x>\r\n <parent@x> junk <notanid>\r\n\r\nbody\r\n"
)
BARE = b"Subject: plain\r\nDate: yesterday\r\nIn-Reply-To: <parent@x>\r\n\r\nbody\r\n"


async def inbox(store: SqliteStore) -> int:
    account = await store.add_account("bob@example.test", "secret-hash", None)
    box = await store.get_mailbox(account.id, "INBOX")
    assert box is not None
    return box.id


async def test_fields_written_with_the_body(store):
    box = await inbox(store)
    reply = await store.append(box, REPLY)
    bare = await store.append(box, BARE)
    found = await store.sort_fields([reply.blob_id, bare.blob_id, 999_999])
    assert set(found) == {reply.blob_id, bare.blob_id}
    fields = found[reply.blob_id]
    assert (fields.subject, fields.reply) == ("café", True)
    assert fields.sent == 1704186000.0  # 09:00 UTC
    assert (fields.from_mailbox, fields.from_display) == ("Jorg", "Jörg")
    # the group marker is skipped: Ann is the first address of To
    assert (fields.to_mailbox, fields.to_display) == ("ann", "Ann")
    assert fields.cc_mailbox == "cc"
    assert fields.message_id == "<reply@x>"
    assert fields.in_reply_to == "<parent@x>"
    assert fields.references == ("<root@x>", "<parent@x>")
    fields = found[bare.blob_id]
    assert (fields.subject, fields.reply, fields.sent) == ("plain", False, None)
    assert (fields.from_mailbox, fields.from_display, fields.to_display) == ("", "", "")
    # no References: the In-Reply-To id stands in (RFC 5256 section 2.2 step 1.A)
    assert fields.references == ("<parent@x>",)


@pytest.mark.parametrize("by_mailbox", [False, True])
async def test_one_column_alone_is_what_the_whole_fields_hold(store, monkeypatch, by_mailbox):
    box = await inbox(store)
    ids = [(await store.append(box, data)).blob_id for data in (REPLY, BARE)]
    if by_mailbox:  # as for a large mailbox: read by the mailbox, not id by id
        monkeypatch.setattr(sqlite_sort, "BY_MAILBOX", 0)
    whole = await store.sort_fields(ids)
    for column in ("subject", "sent", "from_mailbox", "from_display", "to_display", "cc_mailbox"):
        found = await store.sort_column(column, [*ids, 999_999], box)
        assert found == {blob_id: getattr(whole[blob_id], column) for blob_id in ids}
    # the column name reaches SQL: only the sort key columns are accepted
    with pytest.raises(ValueError):
        await store.sort_column("subject FROM blobs --", ids)


async def test_one_row_per_body_and_gone_with_it(store):
    box = await inbox(store)
    account = await store.get_account("bob@example.test")
    first = await store.append(box, REPLY)
    outcomes = await store.deliver(REPLY, [LocalDelivery(account.id, "INBOX")])
    assert outcomes[0].uid is not None
    trash = await store.get_mailbox(account.id, "Trash")
    await store.copy_messages(box, [first.uid], trash.id)
    rows = await store._engine.read(
        lambda c: c.execute("SELECT count(*) FROM sort_fields").fetchone()
    )
    assert tuple(rows) == (1,)
    await store.delete_mailbox(account.id, "Trash")
    await store.update_flags(box, [first.uid, outcomes[0].uid], "add", frozenset({"\\Deleted"}))
    await store.expunge(box)
    assert await store.sort_fields([first.blob_id]) == {}


async def test_migration_fills_in_existing_bodies(tmp_path):
    store = SqliteStore(tmp_path)
    await store.open()
    await store.add_domain("example.test")
    box = await inbox(store)
    info = await store.append(box, REPLY)
    expected = await store.sort_fields([info.blob_id])
    await store.close()
    # the database as the release before this table left it
    with sqlite3.connect(tmp_path / DATABASE_FILE) as conn:
        conn.execute("DROP TRIGGER sort_fields_gone")
        conn.execute("DROP TABLE sort_fields")
        # Later migrations changed other tables: run this one alone, as the upgrade does.
        schema._v3_sort_fields(conn)
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        assert await store.sort_fields([info.blob_id]) == expected
    finally:
        await store.close()
