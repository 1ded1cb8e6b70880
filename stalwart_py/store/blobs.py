"""Message bodies: content-addressed, reference-counted, parsed once.

A body is stored once however many mailboxes, queue entries or reports refer to it; ``refs``
counts those references and the row goes when the last one does. A blob id is never given
again, even after its row is gone (SQLite would reuse the largest rowid once it is deleted),
so that what is derived from a body can be cached by its id. Hashing and MIME parsing
happen before the write, off the writer thread (``prepare_blob``), so it only copies bytes.

With an external blob backend (``[storage.blob]``, ``blobstore/``) the bytes are uploaded
before the transaction (``PreparedBlob.staging``) and the row's ``external`` is 1 with an
empty ``data``; inserting such a row first checks that the orphan sweep has not claimed the
digest (``blob_deletions``; the argument is in ``blobstore/__init__.py``).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from stalwart_py import mime
from stalwart_py.mime.sortfields import SortFields, compute
from stalwart_py.store.blobstore import MAX_STAGE_AGE, BlobRetry
from stalwart_py.store.blobstore.bodies import Staging
from stalwart_py.store.engine import Txn
from stalwart_py.store.sqlite_sort import COLUMNS as SORT_COLUMNS
from stalwart_py.store.sqlite_sort import insert_sort_fields, sort_values


@dataclass(frozen=True, slots=True)
class PreparedBlob:
    digest: bytes
    structure: str  # stalwart_py.mime JSON
    data: bytes
    sort: SortFields | None = None  # what IMAP SORT and THREAD compare (sqlite_sort)
    staging: Staging | None = None  # uploaded to the external backend (None: in the row)


# Below this size a body is hashed and parsed right on the event loop (a fraction of a
# millisecond); above it, in a worker thread, so that a big message stalls nobody.
INLINE_LIMIT = 256 * 1024
# A write storing one body (under ``INLINE_LIMIT``) for at most this many mailboxes or queue
# recipients takes a few milliseconds at most: an inline write (``Engine.write``).
INLINE_DELIVERIES = 64


def _prepare(data: bytes) -> PreparedBlob:
    parsed = mime.parse_message(data)
    return PreparedBlob(
        hashlib.sha256(data).digest(),
        mime.to_json(parsed),
        data,
        compute(data, parsed.envelope),
    )


async def prepare_blob(data: bytes) -> PreparedBlob:
    if len(data) <= INLINE_LIMIT:
        return _prepare(data)
    return await anyio.to_thread.run_sync(_prepare, data)


async def prepare_blobs(datas: Sequence[bytes]) -> list[PreparedBlob]:
    """``prepare_blob`` for several bodies (IMAP MULTIAPPEND): together in one worker thread
    once they add up to more than ``INLINE_LIMIT``."""
    if sum(map(len, datas)) <= INLINE_LIMIT:
        return [_prepare(data) for data in datas]
    return await anyio.to_thread.run_sync(lambda: [_prepare(data) for data in datas])


# ``read_blobs`` reads at most this many bodies, adding up to at most ``INLINE_LIMIT``, right
# on the event loop: a 50 KB body comes from SQLite's page cache in tens of microseconds, less
# than the hop to a reader thread and back (POP3 RETR and IMAP FETCH read one at a time).
INLINE_READ_COUNT = 16


def read_small_blobs(conn: sqlite3.Connection, blob_ids: Sequence[int]) -> dict[int, bytes] | None:
    """The bodies of ``blob_ids`` (missing ones left out) when there are at most
    ``INLINE_READ_COUNT`` of them and they add up to at most ``INLINE_LIMIT``, else None
    (read them in a reader thread instead). Incremental blob I/O gives each body's length
    before it is read, so a large body is never read here, and what is read in vain before
    the total goes over is less than ``INLINE_LIMIT``. No BEGIN around the reads: bodies
    never change, so the only thing a snapshot could change is whether a body just removed
    is still there, and either answer is one a moment earlier or later would give."""
    if len(blob_ids) > INLINE_READ_COUNT:
        return None
    out: dict[int, bytes] = {}
    total = 0
    for blob_id in blob_ids:
        if blob_id in out:
            continue
        try:
            with conn.blobopen("blobs", "data", blob_id, readonly=True) as blob:
                size = len(blob)
                total += size
                if total > INLINE_LIMIT or not size:
                    return None  # too much, or an external body (its row holds no bytes)
                out[blob_id] = blob.read()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise  # the caller's lookup retries in a reader thread
            continue  # no such row: a body removed meanwhile
    return out


def put_blob(txn: Txn, blob: PreparedBlob, references: int = 1) -> int:
    """Store a body, or add references to the copy already stored; returns its id."""
    add = "UPDATE blobs SET refs = refs + ? WHERE hash = ? RETURNING id"
    if txn.sequences and blob.staging is None:
        return _insert_first(txn, blob, references, add)
    row = txn.execute(add, (references, blob.digest)).fetchone()
    if row is not None:
        return row[0]
    external = blob.staging is not None
    if blob.staging is not None:
        lock_digest(txn, blob.digest)
        check_unclaimed(txn, blob.digest)
        if blob.staging.age > MAX_STAGE_AGE:
            raise BlobRetry(blob.digest)
    row = txn.execute(
        "INSERT INTO blobs(id, hash, size, refs, structure, data, external)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(hash) DO NOTHING RETURNING id",
        (
            _next_blob_id(txn),
            blob.digest,
            len(blob.data),
            references,
            blob.structure,
            b"" if external else blob.data,
            int(external),
        ),
    ).fetchone()
    if row is None:
        # Another writer (another node, on PostgreSQL) stored the same body since the UPDATE
        # above looked; its row is committed now (the INSERT waited for it): count on it.
        return txn.execute(add, (references, blob.digest)).fetchone()[0]
    blob_id = row[0]
    if blob.sort is not None:
        insert_sort_fields(txn, blob_id, blob.sort)
    return blob_id


_INSERT_NEW = (
    "INSERT INTO blobs(id, hash, size, refs, structure, data, external)"
    " VALUES (nextval('blob_ids'), ?, ?, ?, ?, ?, 0) ON CONFLICT(hash) DO NOTHING"
    " RETURNING id"
)
_SORT_FROM_NEW = (
    f"INSERT INTO sort_fields({SORT_COLUMNS})"
    " SELECT id, ?, ?, CAST(? AS double precision), ?, ?, ?, ?, ?, ?, ?, ? FROM new"
)


def put_blob_with_message(
    txn: Txn, blob: PreparedBlob, mailbox_id: int, message: tuple[int, str, float, int]
) -> tuple[int, int | None, int | None] | None:
    """PostgreSQL, a body kept in its row: the new body (``_insert_first``), the mailbox's
    next UID and the message row (``message``: flags, keywords, internaldate, size) in one
    statement, a round trip fewer per delivery than ``put_blob`` then the message's insert.
    Returns (blob id, UID, MODSEQ); the UID None when the mailbox row was not found (the
    body is stored: the caller inserts the message as usual, and fails as usual); None when
    the body was stored already (nothing was written: the UID is taken only with the
    message) or this is not PostgreSQL's body in its row."""
    if not txn.sequences or blob.staging is not None:
        return None
    sort, sort_params = "", ()
    if blob.sort is not None:
        sort, sort_params = f", sorted AS ({_SORT_FROM_NEW})", sort_values(blob.sort)
    return txn.execute(
        f"WITH new AS ({_INSERT_NEW}){sort},"
        " m AS (UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1"
        " WHERE id = ? AND EXISTS (SELECT 1 FROM new)"
        " RETURNING id, uidnext - 1 AS uid, highestmodseq AS modseq),"
        " message AS (INSERT INTO messages(mailbox_id, uid, modseq, flags, keywords,"
        " internaldate, size, blob_id) SELECT m.id, m.uid, m.modseq, ?, ?, ?, ?, new.id"
        " FROM m, new RETURNING uid, modseq)"
        " SELECT new.id, message.uid, message.modseq FROM new LEFT JOIN message ON true",
        (
            blob.digest,
            len(blob.data),
            1,
            blob.structure,
            blob.data,
            *sort_params,
            mailbox_id,
            *message,
        ),
    ).fetchone()


def _insert_first(txn: Txn, blob: PreparedBlob, references: int, add: str) -> int:
    """``put_blob`` on PostgreSQL for a body kept in its row: nearly every body is new (each
    SMTP delivery's), so the row is inserted first, its id taken from the sequence in the
    same statement, and its sort fields too: one round trip where the update, ``nextval``,
    and the two inserts took four. A
    body stored already (or by another node meanwhile: the insert waits for its commit) gets
    the references instead. A sequence value is lost then, which no one notices (ids are
    never given twice, not dense)."""
    values = (blob.digest, len(blob.data), references, blob.structure, blob.data)
    if blob.sort is None:
        row = txn.execute(_INSERT_NEW, values).fetchone()
    else:
        # The sort fields' row in the same statement (no row when the body was there).
        # ``sent`` may be NULL, whose parameter comes untyped: the cast says what it is.
        row = txn.execute(
            f"WITH new AS ({_INSERT_NEW}) {_SORT_FROM_NEW} RETURNING blob_id",
            (*values, *sort_values(blob.sort)),
        ).fetchone()
    if row is None:
        return txn.execute(add, (references, blob.digest)).fetchone()[0]
    return row[0]


def lock_digest(txn: Txn, digest: bytes, *, wait: bool = True) -> bool:
    """Serialize, per digest, a writer inserting a row for an external body and the orphan
    sweep claiming it (``blobstore/__init__.py``); True once held (until the transaction
    ends). SQLite's single writer serializes them already. PostgreSQL: an advisory lock on
    the digest's first 8 bytes; the sweep does not wait for it (``wait=False``: a digest
    being written is no orphan), so it never deadlocks with a writer's batch."""
    if isinstance(txn.conn, sqlite3.Connection):
        return True
    key = int.from_bytes(digest[:8], "big", signed=True)
    if wait:
        txn.execute("SELECT pg_advisory_xact_lock(?)", (key,))
        return True
    return bool(txn.execute("SELECT pg_try_advisory_xact_lock(?)", (key,)).fetchone()[0])


def check_unclaimed(txn: Txn, digest: bytes) -> None:
    """``BlobRetry`` when the orphan sweep claimed ``digest`` (deleting it now, or deleted it
    not long ago): the body staged for this transaction may be gone."""
    row = txn.execute("SELECT done FROM blob_deletions WHERE hash = ?", (digest,)).fetchone()
    if row is not None:
        raise BlobRetry(digest, in_progress=row[0] is None)


def _next_blob_id(txn: Txn) -> int:
    """One more than any blob id ever given (kept in ``meta``; a database written before
    the counter existed starts from its largest id; on PostgreSQL, a sequence)."""
    if txn.sequences:
        # PostgreSQL: a sequence (pg_schema), which several nodes take from at once; the
        # counter's row below would be locked by one node's batch until it commits.
        return txn.execute("SELECT nextval('blob_ids')").fetchone()[0]
    # One statement, which locks the counter's row: two writers never get the same id.
    # (``WHERE true``: SQLite's grammar needs a WHERE before an upsert's ON CONFLICT after a
    # SELECT.)
    (value,) = txn.execute(
        "INSERT INTO meta(key, value)"
        " SELECT 'blob-id', CAST(coalesce(max(id), 0) + 1 AS TEXT) FROM blobs WHERE true"
        " ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT)"
        " RETURNING value"
    ).fetchone()
    return int(value)


def add_reference(txn: Txn, blob_id: int) -> None:
    txn.execute("UPDATE blobs SET refs = refs + 1 WHERE id = ?", (blob_id,))


def release_blob(txn: Txn, blob_id: int, count: int = 1) -> None:
    txn.execute("UPDATE blobs SET refs = refs - ? WHERE id = ?", (count, blob_id))
    txn.execute("DELETE FROM blobs WHERE id = ? AND refs <= 0", (blob_id,))


def release_mailbox_blobs(txn: Txn, mailbox_ids: Sequence[int]) -> None:
    """Delete every message of these mailboxes and drop their bodies' references (before
    the mailboxes themselves go). The messages go first: a body whose last reference this
    was is deleted, and no message may point at it then."""
    for mailbox_id in mailbox_ids:
        rows = txn.execute(
            "SELECT blob_id, count(*) FROM messages WHERE mailbox_id = ? GROUP BY blob_id",
            (mailbox_id,),
        ).fetchall()
        txn.execute("DELETE FROM messages WHERE mailbox_id = ?", (mailbox_id,))
        for blob_id, count in rows:
            release_blob(txn, blob_id, count)
