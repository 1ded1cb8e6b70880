"""Copy a SQLite store into a PostgreSQL database (``stalwart-py migrate``).

The two schemas have the same tables and columns (``pg_schema.py``;
``tests/integration/test_store_pg_schema.py`` holds them to it), so the copy is table by
table, column by column, with the values unchanged: account ids, mailbox ids, UIDVALIDITY,
UIDNEXT, HIGHESTMODSEQ, every message's UID and MODSEQ, the blob ids and the counters in
``meta`` that hand out the next ones. An IMAP client that synchronised against the SQLite
store finds the same mailboxes with the same UIDs afterwards and has nothing to download
again (RFC 9051 section 2.3.1.1: a UID is valid as long as UIDVALIDITY is the same).

The source is read in one SQLite read transaction: one snapshot, whatever a server still
running on it writes meanwhile (writes after the snapshot are not copied; stop the server
first). The target is written in one PostgreSQL transaction with ``COPY``: either the whole
store arrives or nothing does. Rows stream from a SQLite cursor into the COPY, which sends
them in buffers, so memory stays bounded by a few rows, however many 1 MB bodies there are.

Every table of the SQLite schema is in ``COPIED`` (in an order that satisfies the foreign
keys) or in ``NOT_COPIED`` with the reason; ``check_tables`` refuses a schema with a table in
neither, so a table added by a later migration cannot be left behind silently.

Afterwards ``verify`` compares the row count of every copied table and the SHA-256 of every
body, read back from the target, with the source's.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from stalwart_py.store.blobstore import BlobMissing
from stalwart_py.store.model import StoreError
from stalwart_py.store.pg_dialect import PgConnection
from stalwart_py.store.pg_schema import advance_blob_ids
from stalwart_py.store.pg_schema import migrate as migrate_postgresql
from stalwart_py.store.schema import migrate as migrate_sqlite

# Parents before children (foreign keys are checked row by row during COPY).
COPIED: tuple[str, ...] = (
    "domains",
    "accounts",
    "app_passwords",
    "totp",
    "totp_recovery_codes",
    "web_sessions",
    "aliases",
    "mailboxes",
    "subscriptions",
    "blobs",
    "sort_fields",
    "messages",
    "expunged",
    "sieve_scripts",
    "sieve_vacation",
    "sieve_duplicates",
    "sieve_global",
    "queue_messages",
    "queue_recipients",
    "reports",
    "meta",  # the counters of UIDVALIDITY and blob ids: the next ones must not repeat
    "junk_tokens",
    "junk_state",
    "junk_trained",
    "mta_sts_policies",
    "tls_results",
    "dkim_keys",
    "tls_certificates",
    "acme_accounts",
)

# Small tables whose every row is compared, value by value, after the copy (not only
# counted): the DKIM keys, certificates and ACME account keys every node signs and serves with.
COMPARED: tuple[str, ...] = ("dkim_keys", "tls_certificates", "acme_accounts")

# Tables of the SQLite schema deliberately left out, with why.
NOT_COPIED: dict[str, str] = {
    "blob_deletions": (
        "the orphan sweep's claims and tombstones of bodies in an external backend: a copied "
        "claim would name a sweep that no longer runs; the target's sweep starts afresh and "
        "finds any orphan again"
    ),
    "acme_challenges": (
        "the answers of ACME orders in flight: an order lasts seconds to minutes, and the "
        "target's nodes order again if they must"
    ),
}

CONNECT_TIMEOUT = 10  # seconds to reach the PostgreSQL server
VERIFY_BATCH = 500  # bodies whose digests the target sends per round trip when verifying


class MigrationError(StoreError):
    """The copy cannot start (a non-empty target, an unknown table) or did not verify."""


@dataclass
class Summary:
    """What was copied and what the verification found."""

    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    bodies: int = 0  # bodies whose SHA-256 was compared
    body_bytes: int = 0
    mismatches: list[str] = field(default_factory=list)

    def lines(self) -> Iterator[str]:
        for table, count in self.rows.items():
            yield f"{table:<18} {count:>10} rows"
        yield f"{'bodies verified':<18} {self.bodies:>10} ({self.body_bytes} bytes, SHA-256)"
        for table, reason in NOT_COPIED.items():
            yield f"{table:<18} {'not copied':>10} ({reason.split(':')[0]})"
        for mismatch in self.mismatches:
            yield f"MISMATCH: {mismatch}"


def sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    """The store's tables (SQLite's own, such as ``sqlite_stat1``, are not the store's)."""
    return [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " ORDER BY name"
        )
    ]


def check_tables(tables: list[str]) -> None:
    """Every table is copied or deliberately not: refuse a schema this copy does not know."""
    unknown = sorted(set(tables) - set(COPIED) - set(NOT_COPIED))
    if unknown:
        raise MigrationError(
            f"the SQLite store has tables this migration does not know: {', '.join(unknown)}"
            " (add them to COPIED or NOT_COPIED in stalwart_py/store/pg_migrate.py)"
        )


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]


def open_source(data_dir: Path, database_file: str) -> sqlite3.Connection:
    """The SQLite store brought to the current schema (as opening it in the server would),
    then read in one transaction: one snapshot for the whole copy."""
    path = data_dir / database_file
    if not path.is_file():
        raise MigrationError(f"no SQLite store at {path} (storage.data-dir)")
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    migrate_sqlite(conn)
    conn.execute("BEGIN")  # deferred: the snapshot starts with the first read
    return conn


def open_target(url: str, password: str | None) -> PgConnection:
    def connect() -> psycopg.Connection:
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "application_name": "stalwart-py migrate",
            "connect_timeout": CONNECT_TIMEOUT,
        }
        if password is not None:
            kwargs["password"] = password
        return psycopg.connect(url, **kwargs)

    try:
        conn = PgConnection(connect)
    except psycopg.Error as exc:
        raise MigrationError(f"cannot connect to PostgreSQL: {exc}".strip()) from None
    migrate_postgresql(conn)  # the schema, created or brought up to date
    return conn


def nonempty_tables(target: PgConnection) -> list[str]:
    return [
        table
        for table in COPIED
        if target.raw.execute(f'SELECT EXISTS (SELECT 1 FROM "{table}")').fetchone()[0]
    ]


# Moving a body to the external backend, and reading one back (blocking calls: the copy runs
# in a worker thread, these reach the event loop's backend).
PutBody = Callable[[bytes, bytes], None]
GetBody = Callable[[bytes], bytes]


def copy_store(
    source: sqlite3.Connection,
    target: PgConnection,
    *,
    force: bool = False,
    put_body: PutBody | None = None,
    get_body: GetBody | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> Summary:
    """Copy every table of ``COPIED``, in one target transaction; then ``verify``.

    ``put_body``: bodies kept in the SQLite database are written there (by digest) before
    the transaction commits, and their rows say ``external`` (``--blob-to``). ``get_body``:
    how ``verify`` reads the bodies in the external backend."""
    check_tables(sqlite_tables(source))
    raw = target.raw
    summary = Summary()
    with raw.transaction():
        # The target's tables are locked for the copy: a node started against the database
        # meanwhile waits instead of writing among the copied rows.
        raw.execute(f"LOCK TABLE {', '.join(COPIED)} IN ACCESS EXCLUSIVE MODE")
        filled = nonempty_tables(target)
        if filled and not force:
            raise MigrationError(
                f"the target database is not empty ({', '.join(filled)} have rows); "
                "--force replaces its contents"
            )
        if filled:
            raw.execute(f"TRUNCATE {', '.join(COPIED)}, blob_deletions RESTART IDENTITY CASCADE")
        for table in COPIED:
            moving = put_body if table == "blobs" else None
            summary.rows[table] = _copy_table(source, raw, table, moving)
            if progress is not None:
                progress(table, summary.rows[table])
        _advance_identities(raw)
    verify(source, target, summary, get_body)
    return summary


def _copy_table(
    source: sqlite3.Connection, raw: psycopg.Connection, table: str, put_body: PutBody | None
) -> int:
    columns = _columns(source, table)
    names = ", ".join(f'"{column}"' for column in columns)
    if put_body is not None:
        digest_at, data_at = columns.index("hash"), columns.index("data")
        external_at = columns.index("external")
    count = 0
    # The cursor yields one row at a time; COPY sends its buffer as it fills.
    rows = source.execute(f'SELECT {names} FROM "{table}"')
    with raw.cursor().copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
        for row in rows:
            if put_body is not None and not row[external_at]:
                put_body(row[digest_at], row[data_at])  # stored before the rows commit
                moved = list(row)
                moved[data_at], moved[external_at] = b"", 1
                row = tuple(moved)
            copy.write_row(row)
            count += 1
    return count


def _advance_identities(raw: psycopg.Connection) -> None:
    """Identity columns were given their values explicitly: start their sequences after the
    largest, or the next account or mailbox created would collide with a copied one."""
    identities = raw.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ).fetchall()
    for table, column in identities:
        raw.execute(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'),"
            f' coalesce(max("{column}"), 0) + 1, false) FROM "{table}"'
        )
    advance_blob_ids(raw)  # blob ids: a sequence of their own (pg_schema._v3_blob_ids)


def verify(
    source: sqlite3.Connection,
    target: PgConnection,
    summary: Summary,
    get_body: GetBody | None = None,
) -> None:
    """Counts per table, then every body's SHA-256, source against target (read back after
    the commit, so what is compared is what the target holds). One body in memory at a time;
    PostgreSQL hashes its copies itself (``sha256()``), so only digests cross the network,
    except for bodies in the external backend, which are read back from it."""
    raw = target.raw
    for table in COPIED:
        (expected,) = source.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        (found,) = raw.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        if expected != found:
            summary.mismatches.append(f"{table}: {expected} rows in SQLite, {found} in PostgreSQL")
    for table in COMPARED:
        if _rows(source.execute(f'SELECT * FROM "{table}"')) != _rows(
            raw.execute(f'SELECT * FROM "{table}"')
        ):
            # not the values: they are private keys
            summary.mismatches.append(f"{table}: the rows differ from SQLite's")
    last = -1
    while True:
        ids = [
            blob_id
            for (blob_id,) in source.execute(
                "SELECT id FROM blobs WHERE id > ? ORDER BY id LIMIT ?", (last, VERIFY_BATCH)
            )
        ]
        if not ids:
            break
        last = ids[-1]
        found = {
            blob_id: (bytes(digest), bytes(stored), bool(external))
            for blob_id, digest, stored, external in raw.execute(
                "SELECT id, sha256(data), hash, external FROM blobs WHERE id = ANY(%s)", (ids,)
            )
        }
        for blob_id in ids:
            digest, external, data = source.execute(
                "SELECT hash, external, data FROM blobs WHERE id = ?", (blob_id,)
            ).fetchone()
            if not external:
                sha256, size = hashlib.sha256(data).digest(), len(data)
            else:
                # In the external backend before and after: its digest is its name.
                sha256, size = bytes(digest), None
            _verify_body(blob_id, sha256, bytes(digest), size, found, summary, get_body)


def _rows(rows: Any) -> list[tuple[Any, ...]]:
    """Rows comparable across the two drivers (memoryview and bytes alike)."""
    return sorted(
        tuple(bytes(v) if isinstance(v, memoryview | bytearray) else v for v in row) for row in rows
    )


def _verify_body(
    blob_id: int,
    sha256: bytes,
    digest: bytes,
    size: int | None,
    found: dict[int, tuple[bytes, bytes, bool]],
    summary: Summary,
    get_body: GetBody | None,
) -> None:
    """One body: what the target holds, in its column or in the external backend, against
    the source's SHA-256. ``size``: the source's length (None: the body is external there)."""
    summary.bodies += 1
    summary.body_bytes += size or 0
    if blob_id not in found:
        summary.mismatches.append(f"body {blob_id}: missing from PostgreSQL")
        return
    target_sha256, target_digest, target_external = found[blob_id]
    if target_digest != digest:
        summary.mismatches.append(f"body {blob_id}: its digest differs")
        return
    if target_external:
        if get_body is None:
            summary.mismatches.append(
                f"body {blob_id}: in an external backend, and [storage.blob] names none"
            )
            return
        try:
            body = get_body(digest)
        except BlobMissing:
            summary.mismatches.append(f"body {blob_id}: missing from the blob backend")
            return
        target_sha256 = hashlib.sha256(body).digest()
        if size is None:
            summary.body_bytes += len(body)
    if target_sha256 != sha256:
        summary.mismatches.append(f"body {blob_id}: SHA-256 differs")
