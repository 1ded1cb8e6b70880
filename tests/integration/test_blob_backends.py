"""Message bodies outside the database (``[storage.blob]``): the filesystem backend and the S3
backend against a real SeaweedFS, each through the SQLite store: bodies written before the
metadata, read back whole, by range and by prefix, counted, and swept when orphaned; the
sweep's claim racing a writer; a sweep that died half-way; backup of external bodies."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
import uuid
from collections.abc import Callable

import anyio
import pytest

from stalwart_py import cli
from stalwart_py.store import LocalDelivery, Store, StoreError
from stalwart_py.store.blobstore import BlobBackend, BlobMissing, object_name
from stalwart_py.store.blobstore.filesystem import FilesystemBlobs
from stalwart_py.store.blobstore.s3 import S3Blobs
from stalwart_py.store.blobstore.sweep import STALE_CLAIM, sweep_once
from stalwart_py.store.sqlite import SqliteStore
from stalwart_py.testing.server import write_config
from tests.support.seaweedfs import SeaweedS3

pytestmark = [pytest.mark.anyio, pytest.mark.own_blob_backend]


def message(n: int, size: int = 0) -> bytes:
    return (
        f"From: a@example.test\r\nTo: b@example.test\r\nSubject: message {n}\r\n"
        f"Message-ID: <{n}@example.test>\r\n\r\nbody {n}\r\n" + "x" * size + "\r\n"
    ).encode()


@pytest.fixture(params=["filesystem", "s3"])
def backend(request, tmp_path) -> BlobBackend:
    if request.param == "filesystem":
        return FilesystemBlobs(tmp_path / "blobs")
    seaweed: SeaweedS3 = request.getfixturevalue("seaweedfs")
    return S3Blobs(
        endpoint=seaweed.endpoint,
        bucket="mail",
        region="us-east-1",
        access_key=seaweed.access_key,
        secret_key=seaweed.secret_key,
        prefix=f"{uuid.uuid4().hex}/",  # each test its own folder of the one bucket
    )


@pytest.fixture
def make_store(store_backend, tmp_path, request) -> Callable[[BlobBackend | None], Store]:
    """Stores of the test's metadata backend (SQLite, PostgreSQL), all on the same data."""
    if store_backend == "sqlite":
        return lambda blobs: SqliteStore(tmp_path / "data", blob_backend=blobs)
    from stalwart_py.store.postgresql import PostgresStore

    url = request.getfixturevalue("postgres").database()
    return lambda blobs: PostgresStore(url, tmp_path / "data", blob_backend=blobs)


@pytest.fixture
async def store(make_store, backend):
    store = make_store(backend)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def inbox(store):
    await store.add_domain("example.test")
    account = await store.add_account("bob@example.test", "secret-hash", None)
    return account.id, await store.get_mailbox(account.id, "INBOX")


async def listed(backend: BlobBackend) -> set[bytes]:
    return {item.digest async for batch in backend.list() for item in batch}


async def refused_delivery(store, data: bytes) -> None:
    """A delivery whose transaction writes nothing: its one recipient is over quota."""
    account = await store.add_account(
        f"full-{uuid.uuid4().hex[:8]}@example.test", "h", None, quota_bytes=1
    )
    assert await deliver(store, account.id, data) is None


async def deliver(store, account_id: int, data: bytes) -> int | None:
    [outcome] = await store.deliver(data, [LocalDelivery(account_id)])
    return outcome.uid


async def test_backend_put_get_range_delete_list(backend):
    await backend.open()
    try:
        data = message(1, 5000)
        digest = hashlib.sha256(data).digest()
        await backend.put(digest, data)
        await backend.put(digest, data)  # again: the same bytes, a fresh time
        assert await backend.get(digest) == data
        assert await backend.get_range(digest, 10, 20) == data[10:30]
        assert await backend.get_range(digest, len(data) - 5, 100) == data[-5:]
        assert await listed(backend) == {digest}
        await backend.delete(digest)
        await backend.delete(digest)  # gone already: not an error
        with pytest.raises(BlobMissing):
            await backend.get(digest)
        assert await listed(backend) == set()
    finally:
        await backend.close()


async def test_filesystem_layout_and_modes(tmp_path):
    backend = FilesystemBlobs(tmp_path / "blobs")
    await backend.open()
    data = message(2)
    digest = hashlib.sha256(data).digest()
    await backend.put(digest, data)
    path = tmp_path / "blobs" / object_name(digest)
    assert path.read_bytes() == data
    assert path.parent.name == digest.hex()[:2]
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path.parent).st_mode & 0o777 == 0o700
    leftover = path.parent / ".tmp-crashed"
    leftover.write_bytes(b"half a body")
    os.utime(leftover, (1, 1))
    assert await backend.remove_leftovers(older_than=1000) == 1
    assert not leftover.exists() and path.exists()


async def test_delivery_writes_body_outside_database_and_reads_it_back(store, backend, inbox):
    account_id, mailbox = inbox
    data = message(3, 20_000)
    uid = await deliver(store, account_id, data)
    [info] = await store.messages(mailbox.id)
    assert info.uid == uid and info.size == len(data)
    digest = hashlib.sha256(data).digest()
    assert await backend.get(digest) == data
    row = await store._engine.read(
        lambda c: c.execute("SELECT external, length(data) FROM blobs").fetchone()
    )
    assert row == (1, 0)  # the database holds no bytes of it
    assert await store.read_blobs([info.blob_id]) == {info.blob_id: data}
    assert await store.read_blob_range(info.blob_id, 5, 50) == data[5:55]
    assert await store.read_blob_prefixes({info.blob_id: 40}) == {info.blob_id: data[:40]}
    store._bodies.cache = type(store._bodies.cache)(1 << 20)  # emptied: from the backend
    assert await store.read_blob_range(info.blob_id, 100, 10) == data[100:110]
    assert await store.read_blob_prefixes({info.blob_id: 40}) == {info.blob_id: data[:40]}
    assert store._bodies.cache.size == 0  # prefixes by ranged reads, not whole bodies


async def test_same_body_uploaded_once_and_counted(store, backend, inbox):
    account_id, mailbox = inbox
    data = message(4)
    await deliver(store, account_id, data)
    await deliver(store, account_id, data)
    assert store._bodies.uploads == 1  # the second found the row and referred to it
    refs = await store._engine.read(lambda c: c.execute("SELECT refs FROM blobs").fetchone()[0])
    assert refs == 2
    uids = [info.uid for info in await store.messages(mailbox.id)]
    await store.remove_messages(mailbox.id, uids[:1])
    await sweep_once(store, backend, grace=0)
    assert await listed(backend) == {hashlib.sha256(data).digest()}  # one reference left
    await store.remove_messages(mailbox.id, uids[1:])
    assert await store._engine.read(lambda c: c.execute("SELECT count(*) FROM blobs").fetchone())
    result = await sweep_once(store, backend, grace=0)
    assert result.deleted == 1
    assert await listed(backend) == set()


async def test_body_of_a_failed_transaction_is_swept_after_the_grace_period(store, backend, inbox):
    data = message(5)
    await refused_delivery(store, data)
    digest = hashlib.sha256(data).digest()
    assert await listed(backend) == {digest}  # written before the transaction, which failed
    kept = await sweep_once(store, backend, grace=3600)
    assert kept.deleted == 0 and await listed(backend) == {digest}  # too young to sweep
    swept = await sweep_once(store, backend, grace=0)
    assert swept.deleted == 1 and await listed(backend) == set()


async def test_writer_after_a_sweep_deleted_its_body_uploads_again(store, backend, inbox):
    """The race: the body is staged, the sweep claims and deletes it (no row refers to it
    yet), then the writer's transaction commits. The transaction sees the tombstone, the
    writer uploads again, and the message is readable."""
    account_id, mailbox = inbox
    data = message(6)
    digest = hashlib.sha256(data).digest()
    real_put = backend.put

    async def put_then_sweep(d: bytes, body: bytes) -> None:
        await real_put(d, body)
        if store._bodies.uploads == 0:  # the first upload only: the sweep strikes now
            assert await store.claim_orphan_blobs([d]) == [d]
            await backend.delete(d)
            await store.finish_blob_claims([d])

    backend.put = put_then_sweep  # type: ignore[method-assign]
    await deliver(store, account_id, data)
    assert store._bodies.retries == 1 and store._bodies.uploads == 2
    [info] = await store.messages(mailbox.id)
    assert await backend.get(digest) == data
    assert await store.read_blobs([info.blob_id]) == {info.blob_id: data}
    # The writer cleared the tombstone; the row now protects the body from later sweeps.
    assert (await sweep_once(store, backend, grace=0)).deleted == 0
    assert await backend.get(digest) == data


async def test_writer_waits_for_a_sweep_in_progress(store, backend, inbox):
    account_id, mailbox = inbox
    data = message(7)
    digest = hashlib.sha256(data).digest()
    assert await store.claim_orphan_blobs([digest]) == [digest]  # a sweep deleting it now

    async def finish_the_sweep() -> None:
        await anyio.sleep(0.5)  # ok: long enough for the writer to be waiting; no wait is announced
        await backend.delete(digest)
        await store.finish_blob_claims([digest])

    async with anyio.create_task_group() as tg:
        tg.start_soon(finish_the_sweep)
        await deliver(store, account_id, data)
    [info] = await store.messages(mailbox.id)
    assert await store.read_blobs([info.blob_id]) == {info.blob_id: data}


async def test_a_claim_is_not_made_while_a_row_refers_to_the_body(store, backend, inbox):
    account_id, _ = inbox
    data = message(8)
    await deliver(store, account_id, data)
    assert await store.claim_orphan_blobs([hashlib.sha256(data).digest()]) == []


async def test_sweep_finishes_what_a_dead_sweep_claimed(store, backend, inbox):
    data, other = message(9), message(20)
    digest, young = hashlib.sha256(data).digest(), hashlib.sha256(other).digest()
    await backend.put(digest, data)
    await backend.put(young, other)
    clock = store._engine.clock
    store._engine.clock = lambda: time.time() - 2 * STALE_CLAIM  # claimed long ago...
    assert await store.claim_orphan_blobs([digest]) == [digest]  # ...then the sweeper died
    store._engine.clock = clock
    # A claim just made may be a sweep still running elsewhere: not taken over.
    assert await store.claim_orphan_blobs([young]) == [young]
    result = await sweep_once(store, backend, grace=3600)
    assert result.deleted == 1
    assert await listed(backend) == {young}
    assert await store.unfinished_blob_claims(time.time() + 1) == [young]
    assert await store.forget_blob_tombstones(before=1e12) == 1


async def test_multiappend_queue_and_reports_use_the_backend(store, backend, inbox):
    from stalwart_py.store import NewMessage, OutboundMessage, QueuedRecipient

    _, mailbox = inbox
    datas = [message(10), message(11)]
    await store.append_many(mailbox.id, [NewMessage(d) for d in datas])
    queued = message(12)
    queue_id = await store.enqueue(
        queued, OutboundMessage("a@example.test", [QueuedRecipient("c@elsewhere.test")])
    )
    report = message(13)
    await store.add_report("dmarc", "example.test", "r@example.test", "{}", report)
    everything = {hashlib.sha256(d).digest() for d in [*datas, queued, report]}
    assert await listed(backend) == everything
    entry = await store.queue_entry(queue_id)
    assert (await store.read_blobs([entry.blob_id]))[entry.blob_id] == queued


async def test_bodies_in_the_database_stay_readable_after_switching(make_store, backend):
    before = make_store(None)
    await before.open()
    await before.add_domain("example.test")
    account = await before.add_account("bob@example.test", "h", None)
    old = message(14)
    await deliver(before, account.id, old)
    await before.close()
    after = make_store(backend)
    await after.open()
    try:
        new = message(15)
        await deliver(after, account.id, new)
        mailbox = await after.get_mailbox(account.id, "INBOX")
        infos = await after.messages(mailbox.id)
        bodies = await after.read_blobs([info.blob_id for info in infos])
        assert sorted(bodies.values()) == sorted([old, new])
        assert await listed(backend) == {hashlib.sha256(new).digest()}
    finally:
        await after.close()
    database_only = make_store(None)  # external rows, no backend configured
    await database_only.open()
    try:
        with pytest.raises(StoreError, match="external blob backend"):
            await database_only.read_blobs([info.blob_id for info in infos])
    finally:
        await database_only.close()


async def test_backup_copies_the_external_bodies_it_refers_to(
    store_backend, store, backend, inbox, tmp_path
):
    """Both backends: a PostgreSQL store's backup is the same SQLite file (pg_backup.py)."""
    account_id, _ = inbox
    kept = message(16)
    await deliver(store, account_id, kept)
    orphan = message(17)
    await refused_delivery(store, orphan)
    written = await store.backup(tmp_path / "backup")
    body = tmp_path / "backup" / "blobs" / object_name(hashlib.sha256(kept).digest())
    assert body in written and body.read_bytes() == kept
    assert len(list((tmp_path / "backup" / "blobs").rglob("*/*"))) == 1  # not the orphan
    conn = sqlite3.connect(tmp_path / "backup" / "stalwart.sqlite3")
    assert conn.execute("SELECT count(*) FROM blobs WHERE external = 1").fetchone() == (1,)
    conn.close()


def test_backup_command_with_bodies_in_files_restores_as_a_data_directory(tmp_path, capsys):
    """`stalwart-py backup` with the filesystem backend in its default place: the copy holds
    the database and the referenced bodies (not the orphans), and opens as a data directory."""
    data_dir = tmp_path / "data"
    path = write_config(
        tmp_path, f'[storage]\ndata-dir = "{data_dir}"\n[storage.blob]\nbackend = "filesystem"\n'
    )
    kept, orphan = message(18), message(19)

    async def seed() -> None:
        store = SqliteStore(data_dir, blob_backend=FilesystemBlobs(data_dir / "blobs"))
        await store.open()
        try:
            await store.add_domain("example.test")
            account = await store.add_account("bob@example.test", "h", None)
            await deliver(store, account.id, kept)
            await refused_delivery(store, orphan)
        finally:
            await store.close()

    anyio.run(seed)
    assert cli.main(["backup", str(tmp_path / "copy"), "--config", str(path)]) == 0
    capsys.readouterr()
    copied = {p.name for p in (tmp_path / "copy" / "blobs").rglob("*") if p.is_file()}
    assert copied == {hashlib.sha256(kept).hexdigest()}

    async def read_copy() -> list[bytes]:
        copy = tmp_path / "copy"
        store = SqliteStore(copy, blob_backend=FilesystemBlobs(copy / "blobs"))
        await store.open()
        try:
            account = await store.get_account("bob@example.test")
            box = await store.get_mailbox(account.id, "INBOX")
            infos = await store.messages(box.id)
            return list((await store.read_blobs([i.blob_id for i in infos])).values())
        finally:
            await store.close()

    assert anyio.run(read_copy) == [kept]


async def test_s3_refusals_at_open_name_the_problem(seaweedfs, tmp_path):
    settings = dict(
        endpoint=seaweedfs.endpoint,
        region="us-east-1",
        access_key=seaweedfs.access_key,
    )
    wrong_secret = S3Blobs(bucket="mail", secret_key="not the secret", **settings)
    with pytest.raises(
        StoreError, match=r"S3 bucket check: .*(Access ?Denied|SignatureDoesNotMatch)"
    ):
        await wrong_secret.open()
    no_bucket = S3Blobs(bucket="no-such-bucket", secret_key=seaweedfs.secret_key, **settings)
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
        await no_bucket.open()


def test_blob_settings_errors_name_the_key(tmp_path):
    from stalwart_py.config import ConfigError, parse_config

    base = '[storage]\ndata-dir = "/tmp/unused"\n[storage.blob]\n'
    cases = {
        'backend = "s3"\nendpoint = "https://s3.example"\naccess-key = "k"\nsecret-key = "s"\n': (
            "needs bucket"
        ),
        'backend = "s3"\nendpoint = "http://s3.example"\nbucket = "b"\naccess-key = "k"\n'
        'secret-key = "s"\n': "plain http only to a server on this machine",
        'backend = "s3"\nendpoint = "https://s3.example"\nbucket = "b"\naccess-key = "k"\n': (
            "exactly one of secret-key and secret-key-file"
        ),
        'backend = "tape"\n': "expected one of",
        'grace-period = "soon"\n': "storage.blob.grace-period",
    }
    for text, expected in cases.items():
        with pytest.raises(ConfigError) as error:
            parse_config(base + text, tmp_path / "c.toml", {})
        message = str(error.value)
        assert "c.toml" in message and "storage.blob" in message and expected in message, message
    good = base + 'backend = "s3"\nendpoint = "http://127.0.0.1:9000"\nbucket = "b"\n'
    good += f'access-key = "k"\nsecret-key-file = "{tmp_path / "secret"}"\n'
    blob = parse_config(good, tmp_path / "c.toml", {}).storage.blob
    (tmp_path / "secret").write_text("the secret\n")
    assert S3Blobs.from_settings(blob)._secret_key == "the secret"
    private = good.replace("127.0.0.1:9000", "s3:8333") + "allow-plaintext = true\n"
    assert parse_config(private, tmp_path / "c.toml", {}).storage.blob.endpoint == "http://s3:8333"
