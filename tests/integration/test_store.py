"""The store on each backend (SQLite, PostgreSQL): every operation, UID/MODSEQ rules, change
notification, quotas."""

from __future__ import annotations

import sqlite3
import threading

import anyio
import pytest

from stalwart_py import mime
from stalwart_py.store import (
    AlreadyExists,
    LocalDelivery,
    NotFound,
    OutboundMessage,
    QueuedRecipient,
    QuotaExceeded,
    RecipientUpdate,
    Store,
    StoreError,
)
from stalwart_py.store.blobs import INLINE_LIMIT, INLINE_READ_COUNT
from stalwart_py.store.schema import SCHEMA_VERSION
from stalwart_py.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


def message(n: int, body: str = "hello") -> bytes:
    return (
        f"From: a@example.test\r\nTo: b@example.test\r\nSubject: message {n}\r\n"
        f"Message-ID: <{n}@example.test>\r\n\r\n{body} {n}\r\n"
    ).encode()


@pytest.fixture
async def store(new_store):
    store = new_store()
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def account(store):
    await store.add_domain("example.test")
    return await store.add_account("bob@example.test", "secret-hash", None)


async def inbox(store, account):
    return await store.get_mailbox(account.id, "INBOX")


async def test_schema_is_created_and_reopening_changes_nothing(tmp_path):
    store = SqliteStore(tmp_path)
    await store.open()
    version = await store._engine.read(lambda c: c.execute("PRAGMA user_version").fetchone()[0])
    assert version == SCHEMA_VERSION
    await store.add_domain("example.test")
    await store.close()
    store = SqliteStore(tmp_path)
    await store.open()
    assert [d.name for d in await store.list_domains()] == ["example.test"]
    assert await store.integrity_check() == "ok"
    await store.close()


async def test_a_database_from_a_newer_version_is_refused(tmp_path):
    import sqlite3

    from stalwart_py.store import SchemaTooNew

    conn = sqlite3.connect(tmp_path / "stalwart.sqlite3")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    store = SqliteStore(tmp_path)
    with pytest.raises(SchemaTooNew, match="run a newer stalwart-py"):
        await store.open()


async def test_domains_accounts_and_default_mailboxes(store, account):
    with pytest.raises(AlreadyExists):
        await store.add_domain("EXAMPLE.test")
    with pytest.raises(NotFound, match="not a local domain"):
        await store.add_account("x@elsewhere.test", "h", None)
    with pytest.raises(AlreadyExists):
        await store.add_account("Bob@Example.test", "h", None)
    boxes = {m.name: m.special_use for m in await store.list_mailboxes(account.id)}
    assert boxes == {
        "INBOX": None,
        "Sent": "\\Sent",
        "Drafts": "\\Drafts",
        "Trash": "\\Trash",
        "Junk": "\\Junk",
        "Archive": "\\Archive",
    }
    assert (await store.get_account("BOB@example.test")).id == account.id
    assert (await store.get_credentials("bob@example.test")).secret == "secret-hash"
    updated = await store.update_account("bob@example.test", quota_bytes=1000, is_admin=True)
    assert (updated.quota_bytes, updated.is_admin) == (1000, True)
    with pytest.raises(StoreError, match="still has accounts"):
        await store.delete_domain("example.test")
    await store.delete_account("bob@example.test")
    assert await store.get_account("bob@example.test") is None
    assert await store.list_mailboxes(account.id) == []
    await store.delete_domain("example.test")
    assert not await store.is_local_domain("example.test")


async def test_names_that_are_not_valid_are_never_stored(store, account):
    """The store checks names itself, whoever calls it (the directory checks them first)."""
    for name in ("e.x/../../../../evil", "..", "a/b.example", "e\x00x.test"):
        with pytest.raises(StoreError, match="not a valid domain name"):
            await store.add_domain(name)
    for address in ("../../etc/passwd@example.test", "a\x00b@example.test", "x\r\n@example.test"):
        with pytest.raises(StoreError, match="the local part"):
            await store.add_account(address, "h", None)
        with pytest.raises(StoreError, match="the local part"):
            await store.add_alias(address, ["bob@example.test"])
        with pytest.raises(StoreError, match="the local part"):
            await store.add_alias("x@example.test", [address])
    assert [d.name for d in await store.list_domains()] == ["example.test"]
    assert [a.address for a in await store.list_accounts()] == ["bob@example.test"]
    assert await store.list_aliases() == []


async def test_aliases(store, account):
    await store.add_alias("sales@example.test", ["bob@example.test", "ext@remote.test"])
    await store.add_alias("sales@example.test", ["carol@example.test"])
    await store.add_alias("@example.test", ["bob@example.test"])
    assert (await store.get_alias("sales@example.test")).targets == (
        "bob@example.test",
        "carol@example.test",
        "ext@remote.test",
    )
    assert await store.aliases_of("bob@example.test") == ["@example.test", "sales@example.test"]
    with pytest.raises(AlreadyExists):
        await store.add_alias("bob@example.test", ["x@example.test"])
    await store.delete_alias("sales@example.test", ["carol@example.test"])
    assert len((await store.get_alias("sales@example.test")).targets) == 2
    await store.delete_alias("sales@example.test")
    assert await store.get_alias("sales@example.test") is None
    with pytest.raises(NotFound):
        await store.delete_alias("sales@example.test")


async def test_uids_strictly_increase_and_are_never_reused(store, account):
    box = await inbox(store, account)
    uids = [(await store.append(box.id, message(n))).uid for n in range(5)]
    assert uids == [1, 2, 3, 4, 5]
    await store.update_flags(box.id, [4, 5], "add", frozenset({"\\Deleted"}))
    assert await store.expunge(box.id) == [4, 5]
    assert (await store.append(box.id, message(9))).uid == 6  # 4 and 5 are not given again
    again = await store.get_mailbox(account.id, "INBOX")
    assert again.uidnext == 7 and again.uidvalidity == box.uidvalidity


async def test_a_mailbox_or_an_account_with_messages_can_be_deleted(store, account):
    projects = await store.create_mailbox(account.id, "Projects")
    box = await inbox(store, account)
    await store.append(projects.id, message(1))  # its body only here
    await store.append(projects.id, message(2))
    await store.append(box.id, message(2))  # this body shared with INBOX
    await store.delete_mailbox(account.id, "Projects")
    assert await store.get_mailbox(account.id, "Projects") is None
    [kept] = await store.messages(box.id)
    assert (await store.read_blobs([kept.blob_id]))[kept.blob_id] == message(2)
    refreshed = await store.get_account("bob@example.test")
    assert (refreshed.used_messages, refreshed.used_bytes) == (1, len(message(2)))
    await store.delete_account("bob@example.test")
    assert await store.get_account("bob@example.test") is None
    assert await store.read_blobs([kept.blob_id]) == {}  # the last reference went with it


async def test_a_recreated_mailbox_gets_a_new_uidvalidity(store, account):
    first = await store.create_mailbox(account.id, "Projects")
    await store.delete_mailbox(account.id, "Projects")
    second = await store.create_mailbox(account.id, "Projects")
    assert second.uidvalidity > first.uidvalidity


async def test_modseq_strictly_increases_with_every_change(store, account):
    box = await inbox(store, account)
    seen = [box.highestmodseq]

    async def head() -> int:
        return (await store.get_mailbox_by_id(box.id)).highestmodseq

    for n in range(3):
        info = await store.append(box.id, message(n))
        assert info.modseq == await head()
        seen.append(info.modseq)
    update = await store.update_flags(box.id, [1, 2], "add", frozenset({"\\Seen", "$Work"}))
    assert {m.modseq for m in update.changed} == {await head()}  # one STORE, one MODSEQ
    seen.append(await head())
    await store.update_flags(box.id, [1], "add", frozenset({"\\Seen"}))  # no change, no bump
    assert await head() == seen[-1]
    await store.update_flags(box.id, [3], "add", frozenset({"\\Deleted"}))
    seen.append(await head())
    await store.expunge(box.id)
    seen.append(await head())
    await store.copy_messages(box.id, [1], (await store.get_mailbox(account.id, "Archive")).id)
    await store.move_messages(box.id, [2], (await store.get_mailbox(account.id, "Trash")).id)
    seen.append(await head())
    assert seen == sorted(set(seen)), seen


async def test_flags_modes_and_unchangedsince(store, account):
    box = await inbox(store, account)
    for n in range(3):
        await store.append(
            box.id, message(n), flags=frozenset({"\\Draft"}) if n == 0 else frozenset()
        )
    update = await store.update_flags(box.id, [1, 2], "add", frozenset({"\\Seen", "Work"}))
    assert [m.flags for m in update.changed] == [
        frozenset({"\\Draft", "\\Seen", "Work"}),
        frozenset({"\\Seen", "Work"}),
    ]
    update = await store.update_flags(box.id, [1], "remove", frozenset({"\\draft", "work"}))
    assert update.changed[0].flags == frozenset({"\\Seen", "Work"})  # keywords match exactly
    update = await store.update_flags(box.id, [1, 2, 3], "replace", frozenset({"\\Flagged"}))
    assert {m.flags for m in update.changed} == {frozenset({"\\Flagged"})}
    modseq_of_3 = update.changed[2].modseq
    await store.update_flags(box.id, [1], "add", frozenset({"$Late"}))
    guarded = await store.update_flags(
        box.id, [1, 3], "add", frozenset({"\\Answered"}), unchanged_since=modseq_of_3
    )
    assert guarded.failed == (1,)
    assert [m.uid for m in guarded.changed] == [3]


async def test_copy_move_and_changes_since(store, account):
    box = await inbox(store, account)
    archive = await store.get_mailbox(account.id, "Archive")
    for n in range(4):
        await store.append(box.id, message(n), flags=frozenset({"\\Seen"}), internaldate=1e9 + n)
    start = (await store.get_mailbox_by_id(box.id)).highestmodseq
    assert await store.copy_messages(box.id, [1, 3], archive.id) == [(1, 1), (3, 2)]
    copied = await store.messages(archive.id)
    assert [(m.flags, m.internaldate) for m in copied] == [
        (frozenset({"\\Seen"}), 1e9),
        (frozenset({"\\Seen"}), 1e9 + 2),
    ]
    assert await store.move_messages(box.id, [2], archive.id) == [(2, 3)]
    await store.update_flags(box.id, [4], "add", frozenset({"\\Flagged"}))
    changes = await store.changes_since(box.id, start)
    assert changes.vanished == (2,)
    assert [m.uid for m in changes.changed] == [4]
    assert [m.uid for m in await store.messages(box.id)] == [1, 3, 4]
    counts = await store.mailbox_counts(archive.id)
    assert (counts.messages, counts.unseen) == (3, 0)


async def test_bodies_structures_and_ranges(store, account):
    box = await inbox(store, account)
    data = message(1, "body text")
    info = await store.append(box.id, data)
    stored = await store.structures(box.id, [info.uid, 99])
    assert list(stored) == [info.uid]
    parsed = mime.from_json(stored[info.uid].structure)
    assert parsed.envelope.subject == "message 1"
    assert (await store.read_blobs([info.blob_id]))[info.blob_id] == data
    assert await store.read_blob_range(info.blob_id, 6, 13) == b"a@example.tes"
    again = await store.append(box.id, data)  # the same bytes are stored once
    assert again.blob_id == info.blob_id
    await store.update_flags(box.id, [1, 2], "add", frozenset({"\\Deleted"}))
    counts = await store.mailbox_counts(box.id)
    assert (counts.deleted, counts.deleted_size) == (2, 2 * len(data))  # as the quota counts
    await store.expunge(box.id, [1])
    assert (await store.mailbox_counts(box.id)).deleted_size == len(data)
    assert await store.read_blobs([info.blob_id])  # still referenced by UID 2
    await store.expunge(box.id)
    assert not await store.read_blobs([info.blob_id])  # the last reference is gone


async def test_mailbox_rename_with_children_and_inbox(store, account):
    await store.create_mailbox(account.id, "Work")
    await store.create_mailbox(account.id, "Work/2026")
    await store.rename_mailbox(account.id, "Work", "Jobs")
    names = {m.name for m in await store.list_mailboxes(account.id)}
    assert {"Jobs", "Jobs/2026"} <= names and "Work" not in names
    box = await inbox(store, account)
    await store.append(box.id, message(1))
    await store.rename_mailbox(account.id, "inbox", "Old")
    old = await store.get_mailbox(account.id, "Old")
    assert [m.uid for m in await store.messages(old.id)] == [1]
    assert await store.messages(box.id) == []
    assert (await store.append(box.id, message(2))).uid == 2  # INBOX never reuses UID 1
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(account.id, "Old", "Jobs")
    with pytest.raises(StoreError):
        await store.delete_mailbox(account.id, "INBOX")


async def test_quota_refusal(store):
    await store.add_domain("example.test")
    small = await store.add_account(
        "small@example.test", "h", None, quota_bytes=250, quota_messages=10
    )
    other = await store.add_account("other@example.test", "h", None)
    box = await inbox(store, small)
    await store.append(box.id, message(1))
    with pytest.raises(QuotaExceeded):
        await store.append(box.id, message(2) * 3)
    outcomes = await store.deliver(
        message(3) * 3, [LocalDelivery(small.id), LocalDelivery(other.id)]
    )
    assert isinstance(outcomes[0].error, QuotaExceeded)
    assert outcomes[1].error is None and outcomes[1].uid == 1  # one full mailbox fails alone
    await store.update_flags(box.id, [1], "add", frozenset({"\\Deleted"}))
    await store.expunge(box.id)
    assert (await store.get_account_by_id(small.id)).used_bytes == 0
    await store.append(box.id, message(4))  # room again


async def test_quota_by_message_count(store):
    await store.add_domain("example.test")
    full = await store.add_account("full@example.test", "h", None, quota_messages=2)
    other = await store.add_account("other@example.test", "h", None)
    box = await inbox(store, full)
    archive = await store.get_mailbox(full.id, "Archive")
    await store.append(box.id, message(1))
    await store.append(box.id, message(2))  # exactly at the limit: accepted
    # No byte limit, a message of a few bytes: the count alone refuses.
    with pytest.raises(QuotaExceeded, match=r"^mailbox full: message quota exceeded$"):
        await store.append(box.id, b"x")
    outcomes = await store.deliver(message(3), [LocalDelivery(full.id), LocalDelivery(other.id)])
    assert str(outcomes[0].error) == "mailbox full: message quota exceeded"
    assert isinstance(outcomes[0].error, QuotaExceeded)
    assert outcomes[1].error is None and outcomes[1].uid == 1  # one full mailbox fails alone
    with pytest.raises(QuotaExceeded, match="message quota"):
        await store.copy_messages(box.id, [1, 2], archive.id)  # a copy counts as a message
    assert [m.uid for m in await store.messages(box.id)] == [1, 2]  # refusals left nothing
    assert await store.messages(archive.id) == []
    assert (await store.get_account_by_id(full.id)).used_messages == 2
    await store.update_flags(box.id, [1], "add", frozenset({"\\Deleted"}))
    await store.expunge(box.id)
    account = await store.get_account_by_id(full.id)
    assert (account.used_messages, account.used_bytes) == (1, len(message(2)))
    await store.append(box.id, message(4))  # room again
    with pytest.raises(QuotaExceeded):
        await store.append(box.id, message(5))


async def test_moving_within_an_account_is_never_over_quota(store):
    """A move changes neither the count nor the size of the account's messages: a full
    mailbox can still move messages (into Trash, to delete them; RFC 6851's MOVE)."""
    await store.add_domain("example.test")
    size = len(message(1))
    full = await store.add_account(
        "full@example.test", "h", None, quota_bytes=2 * size, quota_messages=2
    )
    other = await store.add_account("other@example.test", "h", None, quota_messages=1)
    box = await inbox(store, full)
    trash = await store.get_mailbox(full.id, "Trash")
    await store.append(box.id, message(1))
    await store.append(box.id, message(2))
    assert await store.move_messages(box.id, [1, 2], trash.id) == [(1, 1), (2, 2)]
    account = await store.get_account_by_id(full.id)
    assert (account.used_messages, account.used_bytes) == (2, 2 * size)  # no change
    assert [m.uid for m in await store.messages(trash.id)] == [1, 2]
    # Into another account the messages count against that account's quota.
    elsewhere = await inbox(store, other)
    with pytest.raises(QuotaExceeded, match="message quota"):
        await store.move_messages(trash.id, [1, 2], elsewhere.id)
    assert [m.uid for m in await store.messages(trash.id)] == [1, 2]  # nothing moved
    assert await store.move_messages(trash.id, [1], elsewhere.id) == [(1, 1)]
    account = await store.get_account_by_id(full.id)
    assert (account.used_messages, account.used_bytes) == (1, size)
    assert (await store.get_account_by_id(other.id)).used_messages == 1


async def test_deliver_files_into_named_or_created_mailboxes(store, account):
    outcomes = await store.deliver(
        message(1),
        [
            LocalDelivery(account.id, "Archive", frozenset({"\\Seen"})),
            LocalDelivery(account.id, "Nope"),
            LocalDelivery(account.id, "Lists/python", create=True),
        ],
    )
    assert [o.uid for o in outcomes] == [1, 1, 1]
    assert (await store.messages((await inbox(store, account)).id))[0].uid == 1  # Nope -> INBOX
    created = await store.get_mailbox(account.id, "Lists/python")
    assert created is not None and len(await store.messages(created.id)) == 1


async def test_change_notification_reaches_every_watcher(store, account):
    box = await inbox(store, account)
    other = await store.get_mailbox(account.id, "Archive")
    with (
        store.changes.watch(box.id) as first,
        store.changes.watch(box.id) as second,
        store.changes.watch(other.id) as elsewhere,
    ):
        assert not first.pending
        await store.append(box.id, message(1))
        with anyio.fail_after(5):
            await first.wait()
            await second.wait()
        assert not elsewhere.pending
        await store.deliver(message(2), [LocalDelivery(account.id)])  # level-triggered: a
        await store.update_flags(box.id, [1], "add", frozenset({"\\Seen"}))  # later wait()
        assert first.pending  # sees changes that happened while nobody waited
        with anyio.fail_after(5):
            await first.wait()
        assert not first.pending


async def test_concurrent_writes_share_commits(store, account):
    box = await inbox(store, account)
    batches = store._engine.batches
    async with anyio.create_task_group() as group:
        for n in range(64):
            group.start_soon(store.append, box.id, message(n))
    assert len(await store.messages(box.id)) == 64
    assert store._engine.batches - batches < 64  # group commit: fewer fsyncs than writes


@pytest.mark.parametrize("store_backend", ["sqlite"])  # incremental blob I/O
async def test_a_few_small_bodies_are_read_on_the_loop_and_the_rest_in_a_reader(
    store, account, monkeypatch
):
    box = await inbox(store, account)
    small = [await store.append(box.id, message(n)) for n in range(INLINE_READ_COUNT + 1)]
    big_data = message(99, "x" * INLINE_LIMIT)
    big = await store.append(box.id, big_data)
    in_readers = []
    read = store._engine.read

    async def counted(func):
        in_readers.append(func)
        return await read(func)

    monkeypatch.setattr(store._engine, "read", counted)
    ids = [small[0].blob_id, small[1].blob_id, 10**9]  # the last one does not exist
    assert await store.read_blobs(ids) == {
        small[0].blob_id: message(0),
        small[1].blob_id: message(1),
    }
    assert in_readers == []  # no hop to a reader thread
    assert await store.read_blobs([big.blob_id]) == {big.blob_id: big_data}
    assert len(in_readers) == 1  # over INLINE_LIMIT: read off the loop
    everything = await store.read_blobs([info.blob_id for info in small])
    assert everything == {info.blob_id: message(n) for n, info in enumerate(small)}
    assert len(in_readers) == 2  # more than INLINE_READ_COUNT bodies: off the loop too


@pytest.mark.parametrize("store_backend", ["sqlite"])
async def test_a_lookup_that_would_wait_for_a_lock_waits_off_the_event_loop(store, account):
    # SQLITE_BUSY for a WAL reader is rare (another process recovering the database) and
    # cannot be provoked from here; the lookup below meets it on the loop's thread.
    loop_thread = threading.get_ident()
    threads = []

    def lookup(conn: sqlite3.Connection) -> bool:
        threads.append(threading.get_ident())
        if threading.get_ident() == loop_thread:
            busy = sqlite3.OperationalError("database is locked")
            busy.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise busy
        return conn.execute("SELECT 1 FROM domains WHERE name = 'example.test'").fetchone()

    assert await store._engine.lookup(lookup) == (1,)
    assert threads[0] == loop_thread and threads[1] != loop_thread  # retried in a reader

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("SELECT 1 FROM nowhere")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await store._engine.lookup(broken)  # any other error is the caller's


async def test_sieve_scripts(store, account):
    await store.put_script(account.id, "main", "keep;")
    await store.put_script(account.id, "other", "discard;")
    await store.set_active_script(account.id, "main")
    assert (await store.active_script(account.id)).name == "main"
    with pytest.raises(StoreError, match="active"):
        await store.delete_script(account.id, "main")
    await store.rename_script(account.id, "main", "primary")
    assert (await store.active_script(account.id)).name == "primary"
    with pytest.raises(AlreadyExists):
        await store.rename_script(account.id, "primary", "other")
    await store.set_active_script(account.id, None)
    assert await store.active_script(account.id) is None
    await store.delete_script(account.id, "primary")
    assert [s.name for s in await store.list_scripts(account.id)] == ["other"]


async def test_queue_and_reports(store):
    outbound = OutboundMessage(
        "a@example.test",
        (
            QueuedRecipient("x@one.test", "rfc822;x@one.test", ("FAILURE",)),
            QueuedRecipient("y@two.test"),
        ),
        ret="HDRS",
        envid="E1",
    )
    assert await store.queue_size() == (0, 0)
    queue_id = await store.enqueue(message(1), outbound)
    assert await store.queue_size() == (1, 2)
    [entry] = await store.queue_entries()
    assert (entry.id, entry.ret, entry.envid) == (queue_id, "HDRS", "E1")
    assert [(r.address, r.domain, r.notify) for r in entry.recipients] == [
        ("x@one.test", "one.test", ("FAILURE",)),
        ("y@two.test", "two.test", ()),
    ]
    first, second = entry.recipients
    await store.update_queue_recipients(
        queue_id,
        [
            RecipientUpdate(first.id, "delivered"),
            RecipientUpdate(
                second.id, "pending", next_attempt=entry.created + 600, last_error="451"
            ),
        ],
    )
    assert await store.queue_size() == (1, 1)
    assert await store.queue_size() == await Store.queue_size(store)  # the default agrees
    assert await store.queue_entries(due_before=entry.created + 1) == []
    assert await store.retry_queue(queue_id) == 1
    assert len(await store.queue_entries(due_before=entry.created + 3600)) == 1
    await store.update_queue_recipients(queue_id, [RecipientUpdate(second.id, "failed")])
    assert await store.queue_entry(queue_id) is None  # nothing pending: removed
    report_id = await store.add_report("dsn", "example.test", "mailer-daemon@x", "{}", b"x")
    assert [r.id for r in await store.list_reports()] == [report_id]
